"""The local stand-in for Entra ID, Microsoft Graph and Azure Key Vault (see README, "The local stand-in")."""
