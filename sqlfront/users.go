package sqlfront

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/mysql_db"
)

// Users and grants live in the replicated catalog (catalog.SetUsers), so a
// user created on any node logs in on every node. The SQL engine keeps its
// own copy (mysql_db): a statement that changes users edits that copy and
// persists it through the catalog — a compare-and-set on the version the
// copy was loaded from — and every node reloads its copy when the
// catalog's version moves. root is per node: it always has the password
// of this node's start (--root-password) and is never taken from the
// catalog. Passwords are kept only as MySQL native hashes.

// usersSync is the engine's copy of the catalog's user tables.
type usersSync struct {
	s      *Server
	loaded atomic.Uint64 // catalog users version in the engine's copy
}

// Persist is called by the engine, with its user tables locked, after a
// statement changed them.
func (u *usersSync) Persist(ctx *sql.Context, data []byte) error {
	if u.s.cfg.Catalog == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, u.s.cfg.ApplyTimeout)
	defer cancel()
	v, err := u.s.cfg.Catalog.SetUsers(wctx, data, u.loaded.Load())
	if err != nil {
		// The engine's copy holds a change the catalog refused: reload
		// it from the catalog (after the engine lets go of it).
		u.loaded.Store(0)
		go u.s.syncUsersSoon()
		return toSQLError(err)
	}
	u.loaded.Store(v) // the engine's copy is exactly that version
	return nil
}

// setupUsers enables authentication: root with this start's password, the
// others from the catalog. An existing users file of a single-node install
// (before users were replicated) is moved into the catalog once.
func (s *Server) setupUsers() error {
	mdb := s.engine.Analyzer.Catalog.MySQLDb
	s.users = &usersSync{s: s}
	mdb.SetPersister(s.users)
	mdb.SetEnabled(true)
	if s.cfg.Catalog == nil {
		return s.loadUsers(nil)
	}
	if err := s.migrateUsersFile(); err != nil {
		return err
	}
	data, v := s.cfg.Catalog.Users()
	if err := s.loadUsers(data); err != nil {
		return err
	}
	s.users.loaded.Store(v)
	return nil
}

// migrateUsersFile moves users.db into the catalog when the catalog has
// none yet, then renames the file (kept as users.db.migrated).
func (s *Server) migrateUsersFile() error {
	path := s.cfg.UsersFile
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlfront: read users: %w", err)
	}
	if _, v := s.cfg.Catalog.Users(); v == 0 && len(data) > 0 {
		// Validate before it reaches every node.
		scratch := mysql_db.CreateEmptyMySQLDb()
		scratch.SetPersister(&mysql_db.NoopPersister{})
		if err := scratch.LoadData(sql.NewEmptyContext(), data); err != nil {
			return fmt.Errorf("sqlfront: load users from %s: %w", path, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		defer cancel()
		if _, err := s.cfg.Catalog.SetUsers(ctx, data, 0); err != nil {
			return fmt.Errorf("sqlfront: move users from %s into the catalog: %w", path, err)
		}
		slog.Info("users moved into the replicated catalog", "from", path)
	}
	return os.Rename(path, path+".migrated")
}

// loadUsers replaces the engine's users and role grants with data (the
// catalog's), keeping this node's root.
func (s *Server) loadUsers(data []byte) error {
	var users []*mysql_db.User
	var edges []*mysql_db.RoleEdge
	if len(data) > 0 {
		scratch := mysql_db.CreateEmptyMySQLDb()
		scratch.SetPersister(&mysql_db.NoopPersister{})
		if err := scratch.LoadData(sql.NewEmptyContext(), data); err != nil {
			return fmt.Errorf("sqlfront: load users: %w", err)
		}
		sed := scratch.Editor()
		sed.VisitUsers(func(u *mysql_db.User) { users = append(users, u) })
		sed.VisitRoleEdges(func(e *mysql_db.RoleEdge) { edges = append(edges, e) })
		sed.Close()
	}
	mdb := s.engine.Analyzer.Catalog.MySQLDb
	ed := mdb.Editor()
	defer ed.Close()
	var oldUsers []mysql_db.UserPrimaryKey
	var oldEdges []mysql_db.RoleEdgesPrimaryKey
	ed.VisitUsers(func(u *mysql_db.User) {
		oldUsers = append(oldUsers, mysql_db.UserPrimaryKey{Host: u.Host, User: u.User})
	})
	ed.VisitRoleEdges(func(e *mysql_db.RoleEdge) {
		oldEdges = append(oldEdges, mysql_db.RoleEdgesPrimaryKey{FromHost: e.FromHost, FromUser: e.FromUser, ToHost: e.ToHost, ToUser: e.ToUser})
	})
	for _, k := range oldUsers {
		ed.RemoveUser(k)
	}
	for _, k := range oldEdges {
		ed.RemoveRoleEdge(k)
	}
	for _, u := range users {
		if u.User == "root" && u.Host == "%" {
			continue
		}
		ed.PutUser(u)
	}
	for _, e := range edges {
		ed.PutRoleEdge(e)
	}
	mdb.AddSuperUser(ed, "root", "%", s.cfg.RootPassword)
	return nil
}

// syncUsers reloads the engine's users whenever the catalog's move.
func (s *Server) syncUsers(ctx context.Context) {
	for {
		ch := s.cfg.Catalog.Changed()
		s.syncUsersSoon()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-s.usersKick:
		}
	}
}

// syncUsersSoon reloads now if the catalog's version differs (or wakes
// the loop from a goroutine that must not block).
func (s *Server) syncUsersSoon() {
	if !s.usersMu.TryLock() {
		select {
		case s.usersKick <- struct{}{}:
		default:
		}
		return
	}
	defer s.usersMu.Unlock()
	data, v := s.cfg.Catalog.Users()
	if v == s.users.loaded.Load() {
		return
	}
	if err := s.loadUsers(data); err != nil {
		slog.Error("reloading users from the catalog", "err", err)
		time.AfterFunc(time.Second, func() {
			select {
			case s.usersKick <- struct{}{}:
			default:
			}
		})
		return
	}
	s.users.loaded.Store(v)
}
