package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

func init() {
	register("users", &command{
		summary: "add, list and change accounts (users add --admin NAME)",
		run:     runUsers,
	})
}

const usersUsage = `Usage: dais users <add|list|role|passwd|lock|unlock> [flags] [NAME]

  dais users add [--admin | --role ROLE] [--email E] [--first-name F] [--last-name L] NAME
        create an account; the password is read from standard input (one line),
        for example:  echo "$PASSWORD" | dais users add --admin alice
  dais users list
        list accounts: username, role, locked, guid, created, last login
  dais users role NAME ROLE
        change an account's role: viewer, publisher or administrator
  dais users passwd NAME
        set a new password, read from standard input (one line)
  dais users lock NAME / dais users unlock NAME
        refuse or allow the account's logins and API keys

Every subcommand takes --config FILE (default %s) and opens the database
named there directly; the server may be running.
`

func runUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, usersUsage, config.DefaultPath)
		if len(args) == 0 {
			return &exitError{code: 2}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dais users "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, usersUsage, config.DefaultPath) }
	path := fs.String("config", config.DefaultPath, "the gcfg configuration `file`")
	var admin bool
	var role, email, first, last string
	if sub == "add" {
		fs.BoolVar(&admin, "admin", false, "make the account an administrator (same as --role administrator)")
		fs.StringVar(&role, "role", store.RolePublisher, "the account's `role`: viewer, publisher or administrator")
		fs.StringVar(&email, "email", "", "the account's e-mail address")
		fs.StringVar(&first, "first-name", "", "first name")
		fs.StringVar(&last, "last-name", "", "last name")
	}
	if err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	want := map[string]int{"add": 1, "list": 0, "role": 2, "passwd": 1, "lock": 1, "unlock": 1}
	n, known := want[sub]
	if !known {
		return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q (see dais users --help)", sub)}
	}
	if fs.NArg() != n {
		return &exitError{code: 2, err: fmt.Errorf("%s takes %d argument(s), got %d (see dais users --help)", sub, n, fs.NArg())}
	}
	if admin {
		role = store.RoleAdministrator
	}

	loaded, err := config.Load(*path, os.Environ())
	if err != nil {
		return &exitError{code: 78, err: err}
	}
	provider := loaded.Config.Authentication.Provider
	st, err := openStore(ctx, *path)
	if err != nil {
		return err
	}
	defer st.Close()

	switch sub {
	case "add":
		name := fs.Arg(0)
		if err := validUsername(name); err != nil {
			return &exitError{code: 2, err: err}
		}
		if !authz.ValidRole(role) {
			return &exitError{code: 2, err: fmt.Errorf("--role %q: use viewer, publisher or administrator", role)}
		}
		// With another provider than password, the account has no
		// password: the first login with its username takes it over.
		var hash string
		if provider == store.ProviderPassword {
			if hash, err = readPassword(stdin); err != nil {
				return err
			}
		}
		u := &store.User{Username: name, Role: role, Email: email, FirstName: first, LastName: last, PasswordHash: hash, Provider: provider}
		if err := st.CreateUser(ctx, u); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("user %s already exists (change the password with 'dais users passwd %s')", name, name)
			}
			return fmt.Errorf("create user %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "created %s %s (guid %s)\n", u.Role, u.Username, u.GUID)
	case "list":
		users, _, err := st.ListUsers(ctx, store.UserFilter{})
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tROLE\tLOCKED\tGUID\tCREATED\tLAST LOGIN")
		for _, u := range users {
			last := "never"
			if !u.LastLoginAt.IsZero() {
				last = u.LastLoginAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", u.Username, u.Role, u.Locked, u.GUID, u.CreatedAt.UTC().Format(time.RFC3339), last)
		}
		return tw.Flush()
	default:
		u, err := st.UserByUsername(ctx, fs.Arg(0))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user %s (see dais users list)", fs.Arg(0))
		}
		if err != nil {
			return fmt.Errorf("look up user %s: %w", fs.Arg(0), err)
		}
		switch sub {
		case "role":
			if !authz.ValidRole(fs.Arg(1)) {
				return &exitError{code: 2, err: fmt.Errorf("role %q: use viewer, publisher or administrator", fs.Arg(1))}
			}
			u.Role = fs.Arg(1)
		case "passwd":
			if u.PasswordHash, err = readPassword(stdin); err != nil {
				return err
			}
		case "lock":
			u.Locked = true
		case "unlock":
			u.Locked = false
		}
		if err := st.UpdateUser(ctx, u); err != nil {
			return fmt.Errorf("update user %s: %w", u.Username, err)
		}
		fmt.Fprintf(stdout, "updated %s (role %s, locked %v)\n", u.Username, u.Role, u.Locked)
	}
	return nil
}

// parseInterspersed parses flags wherever they stand among the arguments,
// so "users add alice --admin" works like "users add --admin alice".
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func validUsername(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\r\n/:@") {
		return fmt.Errorf("username %q: use 1 to 64 characters without spaces, '/', ':' or '@'", name)
	}
	return nil
}

// readPassword reads one line from stdin and hashes it.
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", &exitError{code: 2, err: errors.New("empty password: give it on standard input, for example: echo \"$PASSWORD\" | dais users add NAME")}
	}
	return web.HashPassword(pw)
}

// openStore opens the database of the configuration at path, as the server would.
func openStore(ctx context.Context, path string) (store.Store, error) {
	loaded, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, &exitError{code: 78, err: err}
	}
	st, err := store.Open(ctx, loaded.Config, nil)
	if err != nil {
		return nil, fmt.Errorf("open the %s database: %w", loaded.Config.Database.Provider, err)
	}
	return st, nil
}
