#!/bin/sh
# azd postprovision hook (azure.yaml), run after the template is provisioned and before the code is
# deployed: grants the function's managed identity its Microsoft Graph application roles (main.bicep's
# GRAPH_APP_ROLES) and, in vendor-hosted mode, writes the provisioner app's federated identity credential
# that trusts the identity (issuer: this tenant, subject: the identity's object id).
#
# Why here and not in infra/app/graph.bicep: on a first deployment both reference Entra objects created
# moments earlier, and Entra answers before it has replicated them. Granting a role to a user-assigned
# identity from the same deployment fails with 400 "Not a valid reference update"
# (https://github.com/microsoftgraph/msgraph-bicep-types/issues/193; the same answer to a direct Graph call:
# https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/1407), and a credential on a new
# app with 404 (msgraph-bicep-types issues 271 and 301). A deployment cannot retry one resource, so
# `azd up` failed until rerun; this hook retries exactly those answers (and throttling) until Entra has
# caught up: up to GRAPH_REPLICATION_ATTEMPTS x GRAPH_REPLICATION_DELAY_SECONDS, 10 minutes by default,
# because more than 5 minutes has been reported (issue 193, 2026-05-09).
#
# Safe to run again: a role already granted is skipped, Graph's "already exists" answer counts as granted,
# and the credential is an upsert by name. Every az call is pinned to the azd environment's subscription.
# Graph is called as the signed-in Azure CLI user, who must be allowed to grant application permissions
# (Privileged Role Administrator or Global Administrator). On Windows, azd runs `sh` hooks with bash
# (Git Bash). README, "Deploy".
set -eu

missing="run it through azd (azd up or azd provision), which sets the environment"
: "${AZURE_SUBSCRIPTION_ID:?$missing}"
: "${AZURE_TENANT_ID:?$missing}"
: "${MANAGED_IDENTITY_PRINCIPAL_ID:?$missing}"
: "${GRAPH_APP_ROLES:?$missing}"
provisioner=${PROVISIONER_UNIQUE_NAME:-}

graph_app_id=00000003-0000-0000-c000-000000000000 # Microsoft Graph's application id in every tenant
principal=$MANAGED_IDENTITY_PRINCIPAL_ID
attempts=${GRAPH_REPLICATION_ATTEMPTS:-60}
delay=${GRAPH_REPLICATION_DELAY_SECONDS:-10}
# Graph's answers while it has not replicated a new object, and its throttling: worth waiting for.
replication='Not a valid reference update|Request_ResourceNotFound|queried reference-property objects are not present|Too Many Requests|Service Unavailable|Gateway Timeout'
# Graph's answer to a grant that exists already (a rerun, or the read below lagging behind).
already_granted='Permission being assigned already exists on the object'
privileges="the signed-in Azure CLI user must be allowed to grant application permissions (Privileged Role Administrator or Global Administrator)"

fail() {
  echo "postprovision: $*" >&2
  exit 1
}
is_guid() {
  case $1 in *[!0-9a-fA-F-]* | '') return 1 ;; esac
  [ ${#1} -eq 36 ]
}
lower() { printf '%s' "$1" | tr 'ABCDEF' 'abcdef'; }

# The cloud's Graph and token exchange audience (main.bicep's GRAPH_URL and FEDERATION_AUDIENCE outputs; the
# public cloud's when an older environment has none). Only Microsoft's four Graph roots, passed to every
# `az rest` as --resource: the Azure CLI knows no DoD Graph of its own (azure-cli-core, cloud.py).
graph_root=${GRAPH_URL:-https://graph.microsoft.com}
case $graph_root in
  https://graph.microsoft.com | https://graph.microsoft.us | https://dod-graph.microsoft.us | https://microsoftgraph.chinacloudapi.cn) ;;
  *) fail "GRAPH_URL is not a Microsoft Graph root: '$graph_root'" ;;
esac
graph=$graph_root/v1.0
audience=${FEDERATION_AUDIENCE:-api://AzureADTokenExchange}
case $audience in
  api://AzureADTokenExchange | api://AzureADTokenExchangeUSGov | api://AzureADTokenExchangeChina) ;;
  *) fail "FEDERATION_AUDIENCE is not a token exchange audience: '$audience'" ;;
esac

# Every read goes through here: pinned to the azd environment's subscription (not whatever `az account set`
# chose last), and without the carriage returns the Windows Azure CLI ends its lines with under Git Bash
# (https://github.com/Azure/azure-cli/issues/33385).
azs() {
  azs_out=$(az "$@" --subscription "$AZURE_SUBSCRIPTION_ID") || return
  [ -z "$azs_out" ] || printf '%s\n' "$azs_out" | tr -d '\r'
}

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

# graph_write METHOD URL BODY WHAT DONE_TEXT [az rest arguments]: one Graph write, retried while Entra has
# not replicated what it references. An answer containing DONE_TEXT (if given) counts as success.
graph_write() {
  method=$1 url=$2 body=$3 what=$4 done_text=$5
  shift 5
  tries=1
  while :; do
    if az rest --method "$method" --url "$url" --resource "$graph_root" --body "$body" "$@" \
      --subscription "$AZURE_SUBSCRIPTION_ID" --output none 2>"$errors"; then
      return 0
    fi
    if [ -n "$done_text" ] && grep -q "$done_text" "$errors"; then
      return 0
    fi
    if ! grep -Eq "$replication" "$errors"; then
      echo "postprovision: $what: Microsoft Graph refused it ($privileges):" >&2
      tr -d '\r' <"$errors" >&2
      exit 1
    fi
    if [ "$tries" -ge "$attempts" ]; then
      echo "postprovision: $what: Entra had not replicated the new objects after $attempts tries; run azd provision again:" >&2
      tr -d '\r' <"$errors" >&2
      exit 1
    fi
    echo "postprovision: $what: Entra has not replicated the new objects yet; try $((tries + 1)) of $attempts in ${delay}s"
    tries=$((tries + 1))
    sleep "$delay"
  done
}

command -v az >/dev/null 2>&1 || fail "needs the Azure CLI (az): see README, Deploy"
azs account show --output none 2>/dev/null ||
  fail "the Azure CLI is not signed in or cannot see subscription $AZURE_SUBSCRIPTION_ID: run az login"
is_guid "$principal" || fail "MANAGED_IDENTITY_PRINCIPAL_ID is not an object id: '$principal'"

# `az rest` gets a Graph token for the tenant of the CLI's default account: --subscription does not choose
# it for a URL outside Azure Resource Manager (azure-cli, azure/cli/core/util.py, send_raw_request). So ask
# Graph which tenant it is answering for before changing anything.
tenant=$(azs rest --method get --resource "$graph_root" --url "$graph/organization" --query 'value[0].id' --output tsv) ||
  fail "cannot read the tenant from Microsoft Graph: run az login --tenant $AZURE_TENANT_ID"
[ "$(lower "$tenant")" = "$(lower "$AZURE_TENANT_ID")" ] ||
  fail "the Azure CLI reaches Microsoft Graph in tenant '$tenant', but azd deployed to tenant $AZURE_TENANT_ID: run az login --tenant $AZURE_TENANT_ID"

# Role ids are looked up by value on this tenant's Graph service principal, never written down.
graph_sp=$(azs rest --method get --resource "$graph_root" --url "$graph/servicePrincipals(appId='$graph_app_id')" --query id --output tsv) ||
  fail "cannot read the Microsoft Graph service principal of tenant $AZURE_TENANT_ID"
is_guid "$graph_sp" || fail "tenant $AZURE_TENANT_ID has no Microsoft Graph service principal"
roles=$(azs rest --method get --resource "$graph_root" --url "$graph/servicePrincipals/$graph_sp" \
  --query "appRoles[?contains(allowedMemberTypes, 'Application')].[value, id]" --output tsv) ||
  fail "cannot read Microsoft Graph's application permissions"
# What the identity holds already. A brand-new identity may not be readable yet: then nothing is known
# and every grant is attempted (and retried).
granted=$(azs rest --method get --resource "$graph_root" --url "$graph/servicePrincipals/$principal/appRoleAssignments" \
  --query "value[?resourceId=='$graph_sp'].appRoleId" --output tsv 2>/dev/null | tr '\n\t' '  ') || granted=""

for role in $GRAPH_APP_ROLES; do
  case $role in *[!A-Za-z0-9.]*) fail "GRAPH_APP_ROLES holds '$role', which is not a permission name" ;; esac
  role_id=$(printf '%s\n' "$roles" | awk -F '\t' -v role="$role" '$1 == role { print $2 }')
  is_guid "$role_id" || fail "Microsoft Graph in tenant $AZURE_TENANT_ID offers no application permission $role"
  case " $granted " in
    *" $role_id "*)
      echo "postprovision: the managed identity holds $role"
      continue
      ;;
  esac
  graph_write post "$graph/servicePrincipals/$graph_sp/appRoleAssignedTo" \
    "{\"principalId\": \"$principal\", \"resourceId\": \"$graph_sp\", \"appRoleId\": \"$role_id\"}" \
    "granting $role" "$already_granted"
  echo "postprovision: granted $role to the managed identity"
done

# Vendor-hosted mode: the provisioner app trusts the identity's token for the cloud's exchange audience
# (shared/adapters/identity.py, FederatedCredential). An upsert by name (Prefer: create-if-missing,
# https://learn.microsoft.com/graph/api/federatedidentitycredential-upsert): the same call creates it or
# leaves it as it should be.
if [ -n "$provisioner" ]; then
  issuer=${FEDERATED_CREDENTIAL_ISSUER:?$missing}
  case $provisioner in *[!A-Za-z0-9._-]*) fail "PROVISIONER_UNIQUE_NAME has characters a uniqueName cannot: '$provisioner'" ;; esac
  case $issuer in
    *[\"\'\ ]*) fail "FEDERATED_CREDENTIAL_ISSUER is not an issuer URL: '$issuer'" ;;
    https://*/v2.0) ;;
    *) fail "FEDERATED_CREDENTIAL_ISSUER is not an issuer URL: '$issuer'" ;;
  esac
  # trust NAME: the provisioner's federated credential NAME, trusting the identity's tokens from $issuer.
  trust() {
    graph_write patch "$graph/applications(uniqueName='$provisioner')/federatedIdentityCredentials(name='$1')" \
      "{\"issuer\": \"$issuer\", \"subject\": \"$principal\", \"audiences\": [\"$audience\"], \"description\": \"The tenant onboarding function app's user-assigned managed identity\"}" \
      "the provisioner's federated credential $1" "" --headers "Prefer=create-if-missing"
    echo "postprovision: $provisioner trusts the managed identity (federated credential $1)"
  }
  trust function-managed-identity
  # Azure China's Entra has two hosts: Bicep's loginEndpoint (above) is login.chinacloudapi.cn, while its tokens
  # are reported to name login.partner.microsoftonline.cn as issuer (README, "Clouds"; emulator/FIDELITY.md C1).
  # No page says which the identity's exchange token carries, so the provisioner trusts both.
  case $issuer in
    https://login.chinacloudapi.cn/*)
      issuer=https://login.partner.microsoftonline.cn/${issuer#https://login.chinacloudapi.cn/}
      trust function-managed-identity-partner
      ;;
  esac
fi
