package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

func init() {
	register("keys", &command{
		summary: "create, list and delete API keys (keys create --user NAME)",
		run:     runKeys,
	})
}

const keysUsage = `Usage: dais keys <create|list|delete> [flags]

  dais keys create --user NAME [--name KEYNAME]
        make an API key for the user and print it once (only its hash is
        stored): give it to rsconnect, or send it as 'Authorization: Key <key>'
  dais keys list --user NAME
        list the user's keys: id, name, prefix, created, last used
  dais keys delete --user NAME ID
        delete a key (its id from 'keys list')

Every subcommand takes --config FILE (default %s).
`

func runKeys(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, keysUsage, config.DefaultPath)
		if len(args) == 0 {
			return &exitError{code: 2}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dais keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, keysUsage, config.DefaultPath) }
	path := fs.String("config", config.DefaultPath, "the gcfg configuration `file`")
	user := fs.String("user", "", "the `username` the key belongs to (required)")
	name := fs.String("name", "", "a `name` to recognise the key by (create)")
	if err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	want := map[string]int{"create": 0, "list": 0, "delete": 1}
	n, known := want[sub]
	if !known {
		return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q (see dais keys --help)", sub)}
	}
	if fs.NArg() != n {
		return &exitError{code: 2, err: fmt.Errorf("%s takes %d argument(s), got %d (see dais keys --help)", sub, n, fs.NArg())}
	}
	if *user == "" {
		return &exitError{code: 2, err: errors.New("--user NAME is required (see dais users list)")}
	}
	st, err := openStore(ctx, *path)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := st.UserByUsername(ctx, *user)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %s: create it first with 'dais users add %s'", *user, *user)
	}
	if err != nil {
		return fmt.Errorf("look up user %s: %w", *user, err)
	}
	switch sub {
	case "create":
		key, rec, err := web.NewAPIKey()
		if err != nil {
			return err
		}
		rec.UserID, rec.Name = u.ID, *name
		if rec.Name == "" {
			rec.Name = "created " + time.Now().UTC().Format("2006-01-02 15:04")
		}
		if err := st.CreateAPIKey(ctx, &rec); err != nil {
			return fmt.Errorf("store the key: %w", err)
		}
		web.RecordAudit(ctx, st, nil, nil, web.AuditAddAPIKey, fmt.Sprintf("Created API key %d %q for %s (dais keys create)", rec.ID, rec.Name, u.Username))
		// The key alone on stdout, so scripts can capture it.
		fmt.Fprintln(stdout, key)
		fmt.Fprintf(stderr, "API key %d %q for %s (%s). It is shown only this once.\n", rec.ID, rec.Name, u.Username, u.Role)
	case "list":
		keys, err := st.ListAPIKeys(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("list keys: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tCREATED\tLAST USED")
		for _, k := range keys {
			used := "never"
			if !k.LastUsedAt.IsZero() {
				used = k.LastUsedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s…\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.CreatedAt.UTC().Format(time.RFC3339), used)
		}
		return tw.Flush()
	case "delete":
		var id int64
		if _, err := fmt.Sscan(fs.Arg(0), &id); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("key id %q: want the number from 'dais keys list'", fs.Arg(0))}
		}
		keys, err := st.ListAPIKeys(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("list keys: %w", err)
		}
		for _, k := range keys {
			if k.ID == id {
				if err := st.DeleteAPIKey(ctx, id); err != nil {
					return fmt.Errorf("delete key %d: %w", id, err)
				}
				web.RecordAudit(ctx, st, nil, nil, web.AuditDropAPIKey, fmt.Sprintf("Deleted API key %d %q of %s (dais keys delete)", id, k.Name, u.Username))
				fmt.Fprintf(stdout, "deleted key %d of %s\n", id, u.Username)
				return nil
			}
		}
		return fmt.Errorf("user %s has no key %d (see dais keys list --user %s)", u.Username, id, u.Username)
	}
	return nil
}
