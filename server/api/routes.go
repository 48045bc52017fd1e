package api

import (
	"net/http"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// routes is the route table: every endpoint dais serves under /__api__
// (and the content it serves at /content/), in the order and with the
// headings of docs/api.md; each handler lives in the file its comment
// names. Keep one line per method and path. Every route gets the web
// server's middleware: authentication (UserFrom), the JSON-only rule of
// /__api__ and the refusal of anonymous writes; paths under /__api__ that
// no route matches are a JSON 404 (server/web).
func (a *API) routes() {
	h := a.handler
	viewer := web.RequireRole(store.RoleViewer)
	publisher := web.RequireRole(store.RolePublisher)
	admin := web.RequireRole(store.RoleAdministrator)
	route := func(pattern string, handler http.Handler) { a.web.Handle(pattern, a.auditedRoute(pattern, handler)) }

	// Server settings (server_settings.go).
	route("GET /__api__/server_settings", http.HandlerFunc(a.serverSettings)) // public: clients read it before checking the key
	route("GET /__api__/server_settings/applications", viewer(http.HandlerFunc(a.applicationSettings)))
	route("GET /__api__/server_settings/scheduler", viewer(http.HandlerFunc(a.schedulerSettings)))
	route("GET /__api__/server_settings/scheduler/{app_mode}", viewer(http.HandlerFunc(a.schedulerSettings)))
	route("GET /__api__/v1/server_settings/r", viewer(a.runtimeSettings(manifest.LangR)))
	route("GET /__api__/v1/server_settings/python", viewer(a.runtimeSettings(manifest.LangPython)))
	route("GET /__api__/v1/server_settings/quarto", viewer(a.runtimeSettings(manifest.LangQuarto)))
	route("GET /__api__/v1/server_settings/tensorflow", viewer(http.HandlerFunc(a.tensorflowSettings)))
	route("GET /__api__/v1/timezones", viewer(http.HandlerFunc(a.timezones)))
	route("GET /__api__/timezones", viewer(http.HandlerFunc(a.timezones)))

	// Users (users.go).
	route("GET /__api__/me", http.HandlerFunc(a.me))
	route("GET /__api__/users/current", http.HandlerFunc(a.me))
	route("GET /__api__/v1/user", http.HandlerFunc(a.me))
	route("GET /__api__/v1/users", viewer(http.HandlerFunc(a.listUsers)))
	route("POST /__api__/v1/users", admin(http.HandlerFunc(a.createUser)))
	route("GET /__api__/v1/users/{guid}", viewer(http.HandlerFunc(a.getUser)))
	route("PUT /__api__/v1/users/{guid}", viewer(http.HandlerFunc(a.updateUser)))
	route("PATCH /__api__/v1/users/{guid}", viewer(http.HandlerFunc(a.updateUser)))
	route("POST /__api__/v1/users/{guid}/lock", admin(http.HandlerFunc(a.lockUser)))

	// Tokens: R rsconnect's connectUser() and the RStudio IDE (tokens.go;
	// signed requests: server/web/tokenauth.go; the claim page: server/web/tokens.go).
	route("POST /__api__/tokens", web.Anonymous(maxTokenBody, "token", h(a.createToken))) // public: the client has no credentials yet
	route("GET /__api__/tokens", viewer(h(a.listTokens)))
	route("DELETE /__api__/tokens/{id}", viewer(h(a.deleteToken)))

	// API keys of the user who asks (keys.go).
	route("GET /__api__/keys", viewer(h(a.listKeys)))
	route("POST /__api__/keys", viewer(h(a.createKey)))
	route("DELETE /__api__/keys/{id}", viewer(h(a.deleteKey)))

	// Groups (groups.go).
	route("GET /__api__/v1/groups", viewer(h(a.listGroups)))
	route("POST /__api__/v1/groups", viewer(h(a.createGroup)))
	route("GET /__api__/v1/groups/{guid}", viewer(h(a.getGroup)))
	route("PATCH /__api__/v1/groups/{guid}", viewer(h(a.updateGroup)))
	route("DELETE /__api__/v1/groups/{guid}", viewer(h(a.deleteGroup)))
	route("GET /__api__/v1/groups/{guid}/members", viewer(h(a.listGroupMembers)))
	route("POST /__api__/v1/groups/{guid}/members", viewer(h(a.addGroupMember)))
	route("DELETE /__api__/v1/groups/{guid}/members/{user_guid}", viewer(h(a.removeGroupMember)))
	route("GET /__api__/v1/experimental/groups/{guid}/content", viewer(h(a.groupContent)))

	// Legacy applications API, rsconnect 0.8.x and rsconnect-python up to 1.26 (applications.go).
	route("GET /__api__/applications", h(a.listApplications))
	route("POST /__api__/applications", h(a.createApplication))
	route("GET /__api__/applications/{id}", h(a.getApplication))
	route("POST /__api__/applications/{id}", h(a.updateApplication))
	route("POST /__api__/applications/{id}/upload", web.Upload(deploy.MaxUploadBytes, "bundle", h(a.uploadApplication)))
	route("POST /__api__/applications/{id}/deploy", h(a.deployApplication))
	route("GET /__api__/applications/{id}/config", h(a.configApplication))
	route("GET /__api__/tasks/{id}", h(a.getTask("first_status", "status", "last_status"))) // tasks.go

	// Content (content.go).
	route("GET /__api__/v1/content", h(a.listContent))
	route("POST /__api__/v1/content", h(a.createContent))
	route("GET /__api__/v1/content/{guid}", h(a.getContent))
	route("PATCH /__api__/v1/content/{guid}", h(a.patchContent))
	route("DELETE /__api__/v1/content/{guid}", h(a.deleteContent))

	// Bundles (bundles.go).
	route("POST /__api__/v1/content/{guid}/bundles", web.Upload(deploy.MaxUploadBytes, "bundle", h(a.uploadBundle)))
	route("GET /__api__/v1/content/{guid}/bundles", h(a.listBundles))
	route("GET /__api__/v1/content/{guid}/bundles/{bid}", h(a.getBundle))
	route("DELETE /__api__/v1/content/{guid}/bundles/{bid}", h(a.deleteBundle))
	route("GET /__api__/v1/content/{guid}/bundles/{bid}/download", h(a.downloadBundle))

	// Deploys and renders (deploys.go).
	route("POST /__api__/v1/content/{guid}/deploy", h(a.deployContent))
	route("POST /__api__/v1/content/{guid}/build", h(a.buildContent))
	route("POST /__api__/v1/content/{guid}/render", h(a.renderContent))

	// Git-backed content (repository.go): POST .../deploy without a
	// bundle_id deploys the branch (deploys.go).
	route("GET /__api__/v1/content/{guid}/repository", a.onContent(authz.Viewer, a.getRepository))
	route("PUT /__api__/v1/content/{guid}/repository", a.onContent(authz.Editor, a.putRepository))
	route("PATCH /__api__/v1/content/{guid}/repository", a.onContent(authz.Editor, a.patchRepository))
	route("DELETE /__api__/v1/content/{guid}/repository", a.onContent(authz.Editor, a.deleteRepository))

	route("GET /__api__/repo/account", publisher(h(a.repoAccount)))
	route("GET /__api__/repo/branches", publisher(h(a.repoBranches)))
	route("GET /__api__/repo/manifest-dirs", publisher(h(a.repoManifestDirs)))

	// Tasks (tasks.go).
	route("GET /__api__/v1/tasks/{id}", h(a.getTask("first", "output", "last")))
	route("GET /__api__/v1/tasks/{id}/stream", h(a.streamTask))          // logs.go: server-sent events (dais)
	route("GET /__api__/v1/content/{guid}/tasks", h(a.listContentTasks)) // logs.go (dais)

	// Environment variables (environment.go): names only ever leave the server.
	route("GET /__api__/v1/content/{guid}/environment", h(a.getEnvironment))
	route("PATCH /__api__/v1/content/{guid}/environment", h(a.setEnvironment(false)))
	route("PUT /__api__/v1/content/{guid}/environment", h(a.setEnvironment(true)))

	// Permissions (permissions.go).
	route("GET /__api__/v1/content/{guid}/permissions", h(a.listPermissions))
	route("POST /__api__/v1/content/{guid}/permissions", h(a.addPermission))
	route("PUT /__api__/v1/content/{guid}/permissions/{pid}", h(a.updatePermission))
	route("DELETE /__api__/v1/content/{guid}/permissions/{pid}", h(a.deletePermission))

	// Jobs: the content's processes (jobs.go).
	route("GET /__api__/v1/content/{guid}/jobs", h(a.listJobs))
	route("GET /__api__/v1/content/{guid}/jobs/{key}/log", h(a.jobLog))
	route("GET /__api__/v1/content/{guid}/jobs/{key}/log/stream", h(a.streamJobLog)) // logs.go: server-sent events (dais)

	// Schedules (schedules.go).
	if a.sch != nil {
		route("GET /__api__/v1/content/{guid}/schedule", a.onContent(authz.Viewer, a.getSchedule))
		route("PUT /__api__/v1/content/{guid}/schedule", a.onContent(authz.Editor, a.putSchedule))
		route("DELETE /__api__/v1/content/{guid}/schedule", a.onContent(authz.Editor, a.deleteSchedule))

		// Connect's variants and schedules, as connectapi calls them, over
		// the same schedules (variants.go).
		route("GET /__api__/applications/{guid}/variants", h(a.listVariants))
		route("GET /__api__/variants/{vid}", h(a.getVariant))
		route("GET /__api__/variants/{vid}/schedules", h(a.variantSchedules))
		route("POST /__api__/variants/{vid}/render", h(a.renderVariant))
		route("GET /__api__/variants/{vid}/renderings", h(a.listRenderings))
		route("GET /__api__/schedules", h(a.listConnectSchedules))
		route("POST /__api__/schedules", h(a.createConnectSchedule))
		route("GET /__api__/schedules/{id}", h(a.getConnectSchedule))
		route("POST /__api__/schedules/{id}", h(a.updateConnectSchedule))
		route("DELETE /__api__/schedules/{id}", h(a.deleteConnectSchedule))
	}

	// System: runtime package caches (caches.go; administrators).
	route("GET /__api__/v1/system/caches/runtime", admin(h(a.listRuntimeCaches)))
	route("DELETE /__api__/v1/system/caches/runtime", admin(h(a.deleteRuntimeCache)))

	// System: the nodes and the load (system.go; administrators, dais).
	route("GET /__api__/v1/system/nodes", admin(h(a.listNodes)))
	route("GET /__api__/v1/system/load", admin(h(a.getLoad)))

	// Tags (tags.go): a tree; administrators manage it, editors tag their content.
	route("GET /__api__/v1/tags", viewer(h(a.listTags)))
	route("POST /__api__/v1/tags", admin(h(a.createTag)))
	route("GET /__api__/v1/tags/{id}", viewer(h(a.getTag)))
	route("PATCH /__api__/v1/tags/{id}", admin(h(a.updateTag)))
	route("DELETE /__api__/v1/tags/{id}", admin(h(a.deleteTag)))
	route("GET /__api__/v1/tags/{id}/content", viewer(h(a.tagContent)))
	route("GET /__api__/v1/content/{guid}/tags", h(a.contentTags))
	route("POST /__api__/v1/content/{guid}/tags", h(a.addContentTag))
	route("DELETE /__api__/v1/content/{guid}/tags/{tid}", h(a.removeContentTag))
	route("GET /__api__/v1/search/content", viewer(h(a.searchContent)))

	// Vanity URLs (vanities.go); the content at its vanity path is the
	// last route, below.
	route("GET /__api__/v1/content/{guid}/vanity", h(a.getVanity))
	route("PUT /__api__/v1/content/{guid}/vanity", h(a.setVanity))
	route("DELETE /__api__/v1/content/{guid}/vanity", h(a.deleteVanity))
	route("GET /__api__/v1/vanities", viewer(h(a.listVanities)))

	// Audit log (audit.go; every write above that succeeds is recorded
	// there, as auditActions names it), usage that the proxy records
	// (instrumentation.go).
	route("GET /__api__/v1/audit_logs", admin(h(a.listAuditLogs)))
	route("GET /__api__/v1/instrumentation/content/visits", publisher(h(a.listVisits)))
	route("GET /__api__/v1/instrumentation/shiny/usage", publisher(h(a.listShinyUsage)))

	// The content itself, outside /__api__ (server/deploy/content.go),
	// and at its vanity path: every path no other route has (vanities.go).
	route("/content/{guid}/", http.HandlerFunc(a.dep.ServeContent))
	route("/", http.HandlerFunc(a.serveVanity))
}

// onContent is a handler of one content, which the user must have want on.
func (a *API) onContent(want authz.Access, f func(http.ResponseWriter, *http.Request, *store.Content) error) http.Handler {
	return a.handler(func(w http.ResponseWriter, r *http.Request) error {
		c, _, err := a.contentFor(r, want)
		if err != nil {
			return err
		}
		return f(w, r, c)
	})
}
