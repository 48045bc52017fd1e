package config

import (
	"fmt"
	"strings"
)

// Reference returns docs/configuration.md: the configuration reference,
// generated from the Keys table so that the two cannot drift (a test
// compares them; `go test ./server/config -run TestReference -update`
// rewrites the file).
func Reference() []byte {
	var b strings.Builder
	b.WriteString(referenceIntro)
	for _, sec := range sections() {
		_, named, _ := lookupSection(sec)
		if named {
			fmt.Fprintf(&b, "\n### `[%s \"NAME\"]`\n\n", sec)
		} else {
			fmt.Fprintf(&b, "\n### `[%s]`\n\n", sec)
		}
		b.WriteString("| Key | Type | Default | Reload | Environment variable | Description |\n")
		b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
		for _, k := range Keys {
			if k.Section != sec {
				continue
			}
			def := "(empty)"
			switch {
			case k.Default() != "":
				def = "`" + k.Default() + "`"
			case k.Named:
				def = "(none)"
			}
			reload := "restart"
			if k.Reloadable {
				reload = "**HUP**"
			}
			doc := k.Doc
			if k.Secret {
				doc += " *Secret.*"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | `%s` | %s |\n", k.Name, k.Type, def, reload, k.EnvVar(), doc)
		}
	}
	b.WriteString(referenceOutro)
	return []byte(b.String())
}

const referenceIntro = "# Configuration reference\n\n" +
	"<!-- Generated from server/config/keys.go and reference.go; do not edit by hand.\n" +
	"     Regenerate with: go test ./server/config -run TestReference -update -->\n\n" +
	"dais reads Posit Connect's configuration format: an admin's existing\n" +
	"`rstudio-connect.gcfg` works unchanged. The file is\n" +
	"`/etc/rstudio-connect/rstudio-connect.gcfg` unless `--config FILE` names another.\n\n" +
	"## How the configuration is put together\n\n" +
	"Each layer overrides the one before:\n\n" +
	"1. **Defaults** (the tables below).\n" +
	"2. **The file**, in [gcfg](https://pkg.go.dev/gopkg.in/gcfg.v1) format (the Git config syntax):\n" +
	"   `[Section]` headers, `Key = value` lines, `;` or `#` comments. Section and key names are\n" +
	"   case-insensitive. A section may appear several times; the last value of a key wins.\n" +
	"3. **The migration file** beside it, named after it: `rstudio-connect-migration.gcfg` for\n" +
	"   `rstudio-connect.gcfg`. It is read only when it exists.\n" +
	"4. **Environment variables** `CONNECT_<SECTION>_<KEY>` (rules below), and `RSC_LICENSE_SERVER`.\n" +
	"5. **Validation.** Unknown sections and keys are *warnings* (so a file written for a newer\n" +
	"   Posit Connect still starts); values of the wrong type and values that cannot work are\n" +
	"   *errors* that name the file and line, or the environment variable, and the fix. Every\n" +
	"   problem is reported at once, not just the first.\n\n" +
	"`dais config check [--config FILE]` runs all of this and exits 0 when the configuration is\n" +
	"usable (printing any warnings) or 1 listing every problem. `dais config print [--config FILE]`\n" +
	"prints the effective configuration, each value with where it came from (`default`,\n" +
	"`FILE:LINE`, the migration file's `FILE:LINE`, or `env VARIABLE`); secrets are redacted.\n\n" +
	"In the container, `dais-init` renders the effective configuration (file + migration file +\n" +
	"environment) to a file of mode 0600 before it starts the server, and removes the variables\n" +
	"it used from the server's environment, so that no secret reaches content processes.\n\n" +
	"## Value types\n\n" +
	"| Type | Written as |\n" +
	"| --- | --- |\n" +
	"| string | as is, or in double quotes to keep leading/trailing spaces or `;` `#`; escapes `\\\\` `\\\"` `\\n` `\\t` |\n" +
	"| bool | `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0` (any case) |\n" +
	"| integer | decimal, or hexadecimal with `0x` |\n" +
	"| duration | a number with a unit: `500ms`, `90s`, `5m`, `1h30m`. A bare integer is nanoseconds, as in Posit Connect; timeouts under 1s are refused, which catches a forgotten unit |\n" +
	"| list of strings | the key repeated, one value per line; a later layer's list replaces an earlier one |\n\n" +
	"## Environment variables\n\n" +
	"- The name is `CONNECT_`, the section, `_`, the key: `CONNECT_SERVER_DATADIR` sets\n" +
	"  `[Server] DataDir`. Upper case is the convention; the part after `CONNECT_` matches\n" +
	"  case-insensitively, like gcfg names.\n" +
	"- Values are taken literally: no quotes, no escapes.\n" +
	"- **Lists** (`R.Executable`, `Python.Executable`, `Quarto.Executable`): comma-separated, spaces\n" +
	"  around items trimmed: `CONNECT_R_EXECUTABLE=/opt/R/4.3.2/bin/R,/opt/R/4.4.1/bin/R`. The\n" +
	"  variable replaces the file's list; an empty value empties it. (A path containing a comma\n" +
	"  has to be written in the file.)\n" +
	"- **Named subsections** put the name between section and key:\n" +
	"  `CONNECT_RPACKAGEREPOSITORY_CRAN_URL=https://cloud.r-project.org` sets\n" +
	"  `[RPackageRepository \"CRAN\"] URL`. The name is taken as written (subsection names are\n" +
	"  case-sensitive in gcfg) and may contain `_`: the last `_` separates the key.\n" +
	"- `RSC_LICENSE_SERVER` sets `Licensing.LicenseServer`, as in Posit Connect's images;\n" +
	"  `CONNECT_LICENSING_LICENSESERVER` wins when both are set.\n" +
	"- Secrets belong here rather than in the file: `CONNECT_POSTGRES_PASSWORD`, or the whole\n" +
	"  `CONNECT_POSTGRES_URL`; `CONNECT_LDAP_<NAME>_BINDPASSWORD`; `CONNECT_OAUTH2_CLIENTSECRET`.\n" +
	"- A `CONNECT_` variable that names no key is a warning, and is left alone (clients such as\n" +
	"  rsconnect-python use `CONNECT_SERVER` and `CONNECT_API_KEY`).\n" +
	"- When a variable is defined twice, the first definition wins, as with `getenv`.\n\n" +
	"## Reloading\n\n" +
	"`docker kill -s HUP <container>` (or `kill -HUP` the server) re-reads the configuration.\n" +
	"Keys marked **HUP** below apply at once (Scheduler settings to processes started after the\n" +
	"reload); a changed key marked *restart* is logged as \"restart required\" and keeps its old\n" +
	"value until the next start. A configuration that fails to load on reload is logged and the\n" +
	"running one is kept.\n\n" +
	"## Keys\n"

const referenceOutro = "\n## Example\n\n" +
	"A Posit Connect file as admins have it; `dais config check` accepts it as is\n" +
	"(with a warning until `RSC_LICENSE_SERVER` names the license server):\n\n" +
	"```ini\n" +
	"[Server]\n" +
	"SenderEmail =\n" +
	"Address =\n" +
	"DataDir = /data\n\n" +
	"[Licensing]\n" +
	"LicenseType = remote\n\n" +
	"[Database]\n" +
	"Provider = postgres\n\n" +
	"[Postgres]\n" +
	"URL = \"postgres://\"\n\n" +
	"[HTTP]\n" +
	"Listen = :3939\n\n" +
	"[Authentication]\n" +
	"Provider = password\n" +
	"```\n\n" +
	"The same settings from the environment, e.g. in `docker-compose.yml`:\n\n" +
	"```sh\n" +
	"CONNECT_SERVER_DATADIR=/data\n" +
	"CONNECT_DATABASE_PROVIDER=postgres\n" +
	"CONNECT_POSTGRES_URL=postgres://connect@db:5432/connect?sslmode=disable\n" +
	"CONNECT_POSTGRES_PASSWORD=...\n" +
	"CONNECT_LICENSING_LICENSETYPE=remote\n" +
	"RSC_LICENSE_SERVER=license:8999\n" +
	"```\n"
