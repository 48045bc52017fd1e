package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
)

// connectapi 0.12.1, the R admin and automation client, unmodified,
// driven through the container as an administrator's script would. Each
// call is one step: the script prints "STEP <name> OK" or
// "STEP <name> FAIL: <why>" and goes on, so that one run reports every
// call. Values pass between steps through R's global environment.
const connectapiPrelude = `suppressMessages(library(connectapi))
options(repos = c(CRAN = "http://127.0.0.1:9"), width = 200, warn = 1)
args <- commandArgs(trailingOnly = TRUE)
step <- function(name, expr) {
  r <- tryCatch({ force(expr); "OK" },
                error = function(e) paste("FAIL:", gsub("[\r\n]+", " ", conditionMessage(e))))
  # On stderr, with R's warnings (warn = 1: at once), in one write: whole
  # lines. The newline first ends a line another call left unfinished on
  # stdout (print() of a tag tree did: "└── DepartmentSTEP ..." was missed).
  message("\nSTEP ", name, " ", r)
}
client <- connect(server = Sys.getenv("DAIS_SERVER"), api_key = args[1])
`

// connectapiDeploy: users, groups, deploys and content settings.
const connectapiDeploy = connectapiPrelude + `
step("connect", stopifnot(inherits(client, "Connect")))
step("get_runtimes", { rt <- get_runtimes(client); stopifnot(nrow(rt) >= 1, "r" %in% rt$runtime) })
step("users_create", { u <- client$users_create(username = "bob", email = "bob@example.com", password = "bob-password-e2e", user_role = "viewer"); bob <<- u$guid })
step("get_users", { u <- get_users(client); stopifnot("bob" %in% u$username, "root1" %in% u$username) })
step("user_guid_from_username", stopifnot(user_guid_from_username(client, "bob") == bob))
step("groups_create", { g <- client$groups_create("analysts"); grp <<- g$guid })
step("get_groups", stopifnot("analysts" %in% get_groups(client)$name))
step("group_member_add", client$group_member_add(grp, bob))
step("get_group_members", stopifnot(bob %in% get_group_members(client, grp)$guid))

step("bundle_dir", { bnd <<- bundle_dir("/work/apps/rmarkdown") })
step("deploy", { tk <- deploy(client, bnd, name = "report", title = "Report"); poll_task(tk); doc <<- content_item(client, tk$content$guid) })
step("deploy shiny", { tk <- deploy(client, bundle_dir("/work/apps/shiny"), name = "app", title = "App"); poll_task(tk) })
step("redeploy", { tk <- deploy(client, bnd, name = "report", guid = doc$content$guid); poll_task(tk) })
step("get_content", stopifnot(all(c("report", "app") %in% get_content(client)$name)))
step("content_update", { content_update(doc, description = "Sales report"); stopifnot(doc$get_content_remote()$description == "Sales report") })
step("content_update_access_type", { content_update_access_type(doc, "logged_in"); stopifnot(doc$get_content_remote()$access_type == "logged_in") })
step("content_add_user", content_add_user(doc, bob, role = "viewer"))
step("content_add_group", content_add_group(doc, grp, role = "viewer"))
step("get_content_permissions", { p <- get_content_permissions(doc); stopifnot(bob %in% p$principal_guid, grp %in% p$principal_guid) })
step("content_delete_user", { content_delete_user(doc, bob); stopifnot(!bob %in% get_content_permissions(doc)$principal_guid) })
step("content_delete_group", { content_delete_group(doc, grp); stopifnot(!grp %in% get_content_permissions(doc)$principal_guid) })
step("group_member_remove", { client$group_member_remove(grp, bob); stopifnot(!bob %in% get_group_members(client, grp)$guid) })
step("set_environment_new", set_environment_new(doc, GREETING = "hello"))
step("get_environment", { e <- get_environment(doc); stopifnot("GREETING" %in% unlist(e$env_vars)) })
step("create_tag", { create_tag(client, "Department"); tags <- get_tags(client); create_tag(client, "Sales", parent = tags$Department) })
step("get_tags", { tags <<- get_tags(client); stopifnot(!is.null(tags$Department$Sales$id)) })
step("set_content_tags", set_content_tags(doc, tags$Department$Sales))
step("get_content_tags", { ct <- get_content_tags(doc); stopifnot(!is.null(ct$Department$Sales)) })
step("set_vanity_url", set_vanity_url(doc, "reports/sales"))
step("get_vanity_url", stopifnot(grepl("reports/sales", get_vanity_url(doc))))
step("get_variant_default", { v <<- get_variant_default(doc) })
step("set_schedule_day", { s <- get_variant_schedule(v); set_schedule_day(s, n = 1) })
step("get_variant_schedule", { s <- get_variant_schedule(v); stopifnot(s$get_schedule_remote()$schedule != "") })
step("content_render", { poll_task(content_render(doc)) })
step("get_bundles", { b <- get_bundles(doc); stopifnot(nrow(b) == 2); old_bundle <<- as.character(b$id[b$id != doc$get_content_remote()$bundle_id][1]) })
step("download_bundle", { f <- tempfile(fileext = ".tar.gz"); b <- download_bundle(doc, filename = f); stopifnot(inherits(b, "Bundle"), file.size(f) > 0, "doc.Rmd" %in% basename(utils::untar(f, list = TRUE))) })
step("delete_bundle", { delete_bundle(doc, old_bundle); stopifnot(nrow(get_bundles(doc)) == 1) })
message("GUIDS ", doc$content$guid)
`

// connectapiAfter: what the server recorded of the deploys and of the
// views the test made, then delete.
const connectapiAfter = connectapiPrelude + `
step("get_audit_logs", { a <- get_audit_logs(client); stopifnot(all(c("add_user", "add_group", "deploy_application", "add_application_permission", "add_vanity_url") %in% a$action), all(!is.na(a$time))) })
step("get_audit_logs paged", { a <- get_audit_logs(client, limit = 3, asc_order = FALSE); stopifnot(nrow(a) == 3) })
step("get_usage_static", { u <- get_usage_static(client, content_guid = args[2]); stopifnot(nrow(u) >= 1, all(u$content_guid == args[2])) })
step("get_usage_shiny", { u <- get_usage_shiny(client, content_guid = args[3]); stopifnot(nrow(u) >= 1, !is.na(u$started[1]), !is.na(u$ended[1])) })
step("get_usage", get_usage(client))
# The app's processes (it ran for the test's Shiny session): jobs and a log.
app <- content_item(client, args[3])
step("get_jobs", stopifnot(nrow(get_jobs(app)) >= 1))
step("get_log", { j <- get_job_list(app); l <- get_log(j[[1]]); stopifnot(is.data.frame(l)) })
step("content_delete", { content_delete(content_item(client, args[2]), force = TRUE); stopifnot(!"report" %in% get_content(client)$name) })
`

// connectapiClientLimits are calls that cannot work against dais for a
// reason in the client itself, with the reason.
var connectapiClientLimits = map[string]string{
	// get_usage() refuses Connect older than 2025.04.0 before it sends
	// anything; dais reports the API level it implements, 2024.08.0
	// (server_settings.go ConnectVersion), and has no /v1/instrumentation/content/hits.
	"get_usage": "connectapi needs Connect 2025.04.0 for get_usage(); dais reports 2024.08.0",
}

// stepLine finds a step's line, also where another stream's output came
// first on the same line.
var stepLine = regexp.MustCompile(`(?m)STEP (.+?) (OK|FAIL: .*?)\s*$`)

func TestConnectapi(t *testing.T) {
	img := rClientImage(t)
	c := Run(t, Options{})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	key := adminKey(t, c) // root1, administrator
	work := tempDir(t)
	apps := filepath.Join(work, "apps")
	if err := os.MkdirAll(filepath.Join(work, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shiny", "rmarkdown"} {
		// With the example's manifest.json: bundle_dir() bundles a
		// directory as it is, as the user wrote its manifest.
		dst := copyExample(t, apps, name)
		b, err := os.ReadFile(filepath.Join(exampleDir(name), "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, "manifest.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc := &rClient{t: t, image: img, work: work, url: c.URL("")}

	results := map[string]string{}
	var order []string
	check := func(out string) {
		for _, m := range stepLine.FindAllStringSubmatch(out, -1) {
			results[m[1]] = m[2]
			order = append(order, m[1])
		}
	}
	out := rc.runEnv([]string{"DAIS_SERVER=" + c.URL("")}, connectapiDeploy, key)
	check(out)
	var docGUID string
	if m := regexp.MustCompile(`GUIDS (\S+)`).FindStringSubmatch(out); m != nil {
		docGUID = m[1]
	}

	// What a user does: open the report (a visit) and the app (a Shiny
	// session over its WebSocket, closed before usage is read).
	appGUID := appGUID(t, c, key, "app")
	if docGUID != "" {
		if status, body := getWithKey(t, c, "/content/"+docGUID+"/", key); status != http.StatusOK {
			t.Errorf("GET report = %d %.300s", status, body)
		}
		if status, _ := getWithKey(t, c, "/reports/sales/", key); status != http.StatusOK {
			t.Errorf("GET the report's vanity URL = %d", status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s := shinytest.Dial(t, ctx, "ws"+strings.TrimPrefix(c.URL("/content/"+appGUID), "http")+"/websocket/", http.Header{"Authorization": {"Key " + key}})
	s.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "usage"}, "echo"))
	s.Expect(t, `"echo":"echo: usage"`)
	s.Close()
	cancel()
	time.Sleep(time.Second) // the recorder writes every 0.5 s

	check(rc.runEnv([]string{"DAIS_SERVER=" + c.URL("")}, connectapiAfter, key, docGUID, appGUID))

	passed := 0
	for _, name := range order {
		r := results[name]
		switch {
		case r == "OK":
			passed++
		case connectapiClientLimits[name] != "":
			t.Logf("connectapi %s: %s (client-side: %s)", name, r, connectapiClientLimits[name])
		default:
			t.Errorf("connectapi %s: %s", name, r)
		}
	}
	t.Logf("connectapi %s: %d of %d calls pass", connectapiVersion, passed, len(order))
	if len(order) < 45 {
		t.Errorf("only %d steps ran:\n%s", len(order), out)
	}
}
