// Microsoft Graph, through the Graph Bicep extension (bicepconfig.json pins its version):
//  - the managed identity's Graph application roles, looked up by value on the Graph service principal
//    of this tenant (ids are never hard-coded);
//  - optionally (vendor-hosted mode) the multi-tenant provisioner app, which trusts the identity through a
//    federated identity credential, so no secret exists anywhere.
// Deploying this needs a signed-in user who may grant application permissions (Privileged Role
// Administrator or Global Administrator): README, "Deploy".
extension microsoftGraphV1

@description('Object id of the user-assigned managed identity (its service principal).')
param principalId string

@description('Also grant Policy.Read.All (read the tenant app management policy to clamp secret lifetimes).')
param grantPolicyReadAll bool = true

@description('Create the multi-tenant provisioner app and its federated identity credential.')
param deployProvisioner bool = false

param provisionerUniqueName string
param provisionerDisplayName string

// Microsoft Graph's well-known application id, the same in every tenant.
var graphAppId = '00000003-0000-0000-c000-000000000000'

// What the code does with Graph, and nothing broader:
//  Application.ReadWrite.OwnedBy   create app registrations and change only those this identity owns
//                                  (never Application.ReadWrite.All, which reaches every app in the tenant);
//  AppRoleAssignment.ReadWrite.All grant the integration's application permissions (admin consent);
//  Policy.Read.All (optional)      read the default app management policy to clamp secret lifetimes.
var requiredGraphRoles = [
  'Application.ReadWrite.OwnedBy'
  'AppRoleAssignment.ReadWrite.All'
]
var optionalGraphRoles = grantPolicyReadAll ? [
  'Policy.Read.All'
] : []
var graphRoles = concat(requiredGraphRoles, optionalGraphRoles)

resource graphSp 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

resource identityGraphRoles 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [for role in graphRoles: {
  appRoleId: filter(graphSp.appRoles, appRole => appRole.value == role)[0].id
  principalId: principalId
  resourceId: graphSp.id
}]

// Vendor-hosted mode: a managed identity only gets tokens in its own tenant, so customer tenants consent
// to this app instead (README, "Deployment modes"). It asks for the same roles, as application
// permissions; a customer admin grants them once through GET /api/tenants/{tenantId}/consent's URL.
resource provisioner 'Microsoft.Graph/applications@v1.0' = if (deployProvisioner) {
  uniqueName: provisionerUniqueName
  displayName: provisionerDisplayName
  signInAudience: 'AzureADMultipleOrgs'
  requiredResourceAccess: [
    {
      resourceAppId: graphAppId
      resourceAccess: [for role in graphRoles: {
        id: filter(graphSp.appRoles, appRole => appRole.value == role)[0].id
        type: 'Role'
      }]
    }
  ]
}

// The provisioner trusts the identity's token for api://AzureADTokenExchange (shared/identity.py,
// FederatedCredential): issuer = this tenant, subject = the identity's object id.
resource provisionerTrust 'Microsoft.Graph/applications/federatedIdentityCredentials@v1.0' = if (deployProvisioner) {
  name: '${provisioner.uniqueName}/function-managed-identity'
  description: 'The tenant onboarding function app\'s user-assigned managed identity'
  issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
  subject: principalId
  audiences: [
    'api://AzureADTokenExchange'
  ]
}

output provisionerClientId string = deployProvisioner ? provisioner.appId : ''
output graphRoles array = graphRoles
