#!/bin/sh
# azd postdeploy hook (azure.yaml): subscribe the secret_near_expiry function to the vault's
# SecretNearExpiry / SecretExpired events by deploying infra/eventgrid.bicep. It runs after the code is
# deployed because the subscription's webhook needs the Event Grid extension's system key, which the host
# creates once it has loaded the function. azd passes its environment (main.bicep's outputs) as variables.
# Needs the Azure CLI, signed in to the same tenant as azd; every az call is pinned to the azd
# environment's subscription. On Windows, azd runs `sh` hooks with bash (Git Bash): README, "Deploy".
set -eu

missing="run it through azd (azd up or azd deploy), which sets the environment"
: "${AZURE_SUBSCRIPTION_ID:?$missing}"
: "${AZURE_RESOURCE_GROUP:?$missing}"
: "${AZURE_FUNCTION_APP_NAME:?$missing}"
: "${AZURE_EVENT_GRID_SYSTEM_TOPIC_NAME:?$missing}"
: "${AZURE_EVENT_SUBSCRIPTION_NAME:?$missing}"

# Every az call goes through here: pinned to the azd environment's subscription (not whatever `az account
# set` chose last), and without the carriage returns the Windows Azure CLI ends its lines with under Git
# Bash (https://github.com/Azure/azure-cli/issues/33385).
azs() {
  azs_out=$(az "$@" --subscription "$AZURE_SUBSCRIPTION_ID") || return
  [ -z "$azs_out" ] || printf '%s\n' "$azs_out" | tr -d '\r'
}

command -v az >/dev/null 2>&1 || { echo "postdeploy: needs the Azure CLI (az): see README, Deploy" >&2; exit 1; }
azs account show --output none 2>/dev/null || {
  echo "postdeploy: the Azure CLI is not signed in or cannot see subscription $AZURE_SUBSCRIPTION_ID: run az login" >&2
  exit 1
}

template="$(dirname "$0")/../eventgrid.bicep"
attempts=${EVENTGRID_KEY_ATTEMPTS:-30}
delay=${EVENTGRID_KEY_DELAY_SECONDS:-10}

# Wait until the key exists; only whether it does is read here (the template reads the key itself).
# `null` in backquotes is JMESPath's null literal; a bare null would name a field called "null"
# (https://jmespath.org/specification.html#literal-expressions).
echo "postdeploy: waiting for the Event Grid system key of $AZURE_FUNCTION_APP_NAME"
tries=0
while :; do
  # shellcheck disable=SC2016 # the backquotes are JMESPath's
  exists=$(azs functionapp keys list --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
    --query 'systemKeys.eventgrid_extension != `null`' --output tsv 2>/dev/null || true)
  case "$exists" in true | True) break ;; esac
  tries=$((tries + 1))
  if [ "$tries" -ge "$attempts" ]; then
    echo "postdeploy: no eventgrid_extension system key on $AZURE_FUNCTION_APP_NAME after $attempts tries;" \
      "check that the deployment succeeded and the secret_near_expiry function is listed, then run azd deploy again" >&2
    exit 1
  fi
  sleep "$delay"
done

azs deployment group create \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name eventgrid-secret-near-expiry \
  --template-file "$template" \
  --parameters \
  functionAppName="$AZURE_FUNCTION_APP_NAME" \
  systemTopicName="$AZURE_EVENT_GRID_SYSTEM_TOPIC_NAME" \
  eventSubscriptionName="$AZURE_EVENT_SUBSCRIPTION_NAME" \
  --output none
echo "postdeploy: $AZURE_EVENT_SUBSCRIPTION_NAME sends the vault's near-expiry events to secret_near_expiry"
