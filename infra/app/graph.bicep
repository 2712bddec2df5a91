// Microsoft Graph, through the Graph Bicep extension (bicepconfig.json pins its version):
//  - the list of Graph application roles the function's managed identity holds (and the provisioner app
//    asks for), as an output: infra/hooks/postprovision.sh grants them, looked up by value on this
//    tenant's Graph service principal (ids are never hard-coded);
//  - optionally (vendor-hosted mode) the multi-tenant provisioner app. Its federated identity credential,
//    which trusts the identity so no secret exists anywhere, is also written by postprovision.sh.
//
// Why the grants and the credential are not resources here: on a first deployment they reference objects
// created moments earlier, and Entra answers before it has replicated them. Microsoft.Graph/appRoleAssignedTo
// for a user-assigned identity created in the same deployment fails with "Not a valid reference update"
// and succeeds on a rerun (https://github.com/microsoftgraph/msgraph-bicep-types/issues/193, still open
// after a service-side retry change in June 2026; its maintainers know of no documented replication time),
// and a federated credential on an app created in the same deployment fails the same way
// (https://github.com/microsoftgraph/msgraph-bicep-types/issues/271 and /issues/301). A deployment cannot
// retry one resource; the hook retries exactly these answers, so the first `azd up` succeeds without a
// rerun. README, "Deploy", "Why the Graph grants are a hook".
//
// The grants need a signed-in user who may grant application permissions (Privileged Role Administrator
// or Global Administrator), as the hook runs them: README, "Deploy".
//
// National clouds: the extension's preview-era limits page said public cloud only; its 1.0 limits page
// (https://learn.microsoft.com/graph/templates/bicep/limitations) no longer does, and its maintainers say every
// cloud is supported (microsoftgraph/msgraph-bicep-types issue 264). No page states it: README, "Clouds".
extension microsoftGraphV1

@description('Also grant Policy.Read.All (read the tenant app management policy to clamp secret lifetimes).')
param grantPolicyReadAll bool = true

@description('Create the multi-tenant provisioner app (its federated credential is written by the postprovision hook).')
param deployProvisioner bool = false

param provisionerUniqueName string
param provisionerDisplayName string

// Microsoft Graph's well-known application id, the same in every tenant.
var graphAppId = '00000003-0000-0000-c000-000000000000'

// What the code does with Graph, and nothing broader:
//  Application.ReadWrite.OwnedBy   create app registrations and change only those this identity owns
//                                  (never Application.ReadWrite.All, which reaches every app in the tenant);
//  Application.Read.All            with the next one, the documented least privilege for granting an app
//                                  role (POST /servicePrincipals/{id}/appRoleAssignedTo,
//                                  https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto;
//                                  a 403 without it: microsoftgraph/microsoft-graph-docs-contrib issue 3476);
//  AppRoleAssignment.ReadWrite.All grant the integration's application permissions (admin consent);
//  Policy.Read.All (optional)      read the default app management policy to clamp secret lifetimes.
var requiredGraphRoles = [
  'Application.ReadWrite.OwnedBy'
  'Application.Read.All'
  'AppRoleAssignment.ReadWrite.All'
]
var optionalGraphRoles = grantPolicyReadAll ? [
  'Policy.Read.All'
] : []
var graphRoles = concat(requiredGraphRoles, optionalGraphRoles)

resource graphSp 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

// Vendor-hosted mode: a managed identity only gets tokens in its own tenant, so customer tenants consent
// to this app instead (README, "Deployment modes"). It asks for the same roles, as application
// permissions; a customer admin grants them once through GET /api/tenants/{tenantId}/consent's URL.
// Declaring permissions references only Graph's own, long-replicated service principal, so this resource
// has none of the first-run problem above.
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

output provisionerClientId string = deployProvisioner ? provisioner.appId : ''
// Where postprovision.sh writes the federated credential; empty: no provisioner, no credential.
output provisionerUniqueName string = deployProvisioner ? provisioner.uniqueName : ''
output graphRoles array = graphRoles
