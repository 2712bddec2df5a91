"""The tenant onboarding application package: use cases, adapters over Graph and Key Vault, HTTP blueprints."""
