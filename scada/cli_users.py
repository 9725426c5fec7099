# -*- test-case-name: tests.scada.test_cli_users -*-
"""``scada user …`` and ``scada token …``: who may use the API, kept in the operational store.

The store is ``store.path`` of the site file (``-c``, relative to the
working directory like ``history.path``) or ``--store PATH``.  The commands
are safe while ``scada run`` uses the same store (SQLite in WAL mode);
a changed role applies to open sessions at their next request, a new
password or a removed user ends them.

Bad input gets one line on stderr and exit status 1.  ``scada token
create`` prints the new token, and only it, on stdout, once: the store
keeps its hash only.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from tags.timefmt import iso_utc


class _Fail(Exception):
    """A problem to report as one line, exit status 1."""


def _fail_from(exc: Exception) -> _Fail:
    return _Fail(str(exc))


def _open_store(args):
    """Open the store named by ``--store`` or by the site file's ``store.path``."""
    from scada.store import OpsStore, StoreError

    path = args.store
    if path is None:
        from scada.cli import _load

        cfg = _load(args.config)
        if cfg is None:
            raise _Fail("")  # the loader has printed the file's problems
        path = cfg.store.path
    try:
        return OpsStore(path, clock=time.time)
    except StoreError as exc:
        raise _fail_from(exc) from None


def _read_password(args, confirm: bool = True) -> str:
    """Return a new password: one line of stdin with ``--password-stdin``, else typed twice."""
    from scada.auth import check_password

    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        try:
            password = getpass.getpass("Password: ")
            if confirm and getpass.getpass("Password again: ") != password:
                raise _Fail("the passwords do not match")
        except (EOFError, KeyboardInterrupt):
            raise _Fail("no password given") from None
    try:
        return check_password(password)
    except ValueError as exc:
        raise _fail_from(exc) from None


def _check(check, *args) -> None:
    try:
        check(*args)
    except ValueError as exc:
        raise _fail_from(exc) from None


def _when(ts: float | None, never: str = "never") -> str:
    return iso_utc(ts)[:19] + "Z" if ts is not None else never


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# --------------------------------------------------------------------------
# scada user


def cmd_user_add(args, store) -> None:
    """Create a user with a role and a password."""
    from scada.auth import check_name, check_role, hash_password

    _check(check_name, args.name)
    _check(check_role, args.role)
    if store.user(args.name) is not None:
        raise _Fail(f"user {args.name!r} already exists")
    store.add_user(args.name, args.role, hash_password(_read_password(args)))
    print(f"user {args.name!r} added with role {args.role}", file=sys.stderr)


def cmd_user_list(args, store) -> None:
    """List users: name, role, created, last change."""
    users = store.users()
    if not users:
        print(f"no users in {store.path}", file=sys.stderr)
        return
    _table([("NAME", "ROLE", "CREATED", "CHANGED")]
           + [(u.name, u.role, _when(u.created), _when(u.updated)) for u in users])


def cmd_user_remove(args, store) -> None:
    """Remove a user (their sessions end)."""
    store.remove_user(args.name)
    print(f"user {args.name!r} removed", file=sys.stderr)


def cmd_user_passwd(args, store) -> None:
    """Set a user's password (their sessions end)."""
    from scada.auth import hash_password

    if store.user(args.name) is None:
        raise _Fail(f"no user {args.name!r}")
    store.set_password(args.name, hash_password(_read_password(args)))
    print(f"password of {args.name!r} changed; their sessions ended", file=sys.stderr)


def cmd_user_role(args, store) -> None:
    """Give a user another role."""
    from scada.auth import check_role

    _check(check_role, args.role)
    store.set_role(args.name, args.role)
    print(f"user {args.name!r} now has role {args.role}", file=sys.stderr)


# --------------------------------------------------------------------------
# scada token


def cmd_token_create(args, store) -> None:
    """Create an API token and print it, once, alone on stdout."""
    from scada.auth import check_name, check_role, new_api_token, token_hash
    from scada.config import parse_duration

    _check(check_name, args.name, "token")
    _check(check_role, args.role)
    expires = None
    if args.expires is not None:
        try:
            seconds = parse_duration(args.expires)
        except ValueError as exc:
            raise _Fail(f"--expires: {exc}") from None
        if seconds <= 0:
            raise _Fail(f"--expires {args.expires!r}: give a positive duration such as 90d")
        expires = time.time() + seconds
    if any(t.name == args.name for t in store.tokens()):
        raise _Fail(f"token {args.name!r} already exists")
    token = new_api_token()
    store.add_token(args.name, args.role, token_hash(token), expires)
    print(token, flush=True)
    print(f"token {args.name!r} created with role {args.role}, expires {_when(expires)}; "
          "it is shown only this once", file=sys.stderr)


def cmd_token_list(args, store) -> None:
    """List API tokens (never their secrets)."""
    tokens = store.tokens()
    if not tokens:
        print(f"no API tokens in {store.path}", file=sys.stderr)
        return
    now = time.time()
    _table([("NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED")]
           + [(t.name, t.role, _when(t.created), _when(t.expires) + (" (expired)" if t.expired(now) else ""),
               _when(t.last_used, "-")) for t in tokens])


def cmd_token_revoke(args, store) -> None:
    """Revoke an API token."""
    store.revoke_token(args.name)
    print(f"token {args.name!r} revoked", file=sys.stderr)


# --------------------------------------------------------------------------
# Wiring


def _runner(func, what: str):
    """Wrap a command: open the store, run, turn every expected problem into one line and status 1."""

    def run(args) -> int:
        import sqlite3

        from scada.store import StoreError

        store = None
        try:
            store = _open_store(args)
            func(args, store)
        except (_Fail, StoreError) as exc:
            if str(exc):
                print(f"scada {what}: {exc}", file=sys.stderr)
            return 1
        except sqlite3.Error as exc:
            print(f"scada {what}: the store cannot do it: {exc}", file=sys.stderr)
            return 1
        finally:
            if store is not None:
                store.close()
        return 0

    return run


def _store_options() -> argparse.ArgumentParser:
    from scada.cli import _default_config

    parent = argparse.ArgumentParser(add_help=False)
    where = parent.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", default=_default_config(),
                       help="site YAML whose store.path to use (default: %(default)s)")
    where.add_argument("--store", metavar="PATH", help="the store file itself, instead of a site's")
    return parent


def add_parser(sub) -> None:
    """Add ``scada user`` and ``scada token`` to the ``scada`` command's subparsers."""
    from scada.auth import ROLES

    common = [_store_options()]
    roles = ", ".join(ROLES)
    password_help = "read the password as one line from stdin instead of asking twice"

    user = sub.add_parser("user", help="manage API users (kept in the store)",
                          description=f"Manage the users who log in to the API and HMI. Roles: {roles}.")
    users = user.add_subparsers(dest="user_command", required=True)
    p = users.add_parser("add", parents=common, help="add a user (asks for the password)")
    p.add_argument("name")
    p.add_argument("--role", required=True, help=f"one of {roles}")
    p.add_argument("--password-stdin", action="store_true", help=password_help)
    p.set_defaults(func=_runner(cmd_user_add, "user add"))
    p = users.add_parser("list", parents=common, help="list users")
    p.set_defaults(func=_runner(cmd_user_list, "user list"))
    p = users.add_parser("remove", parents=common, help="remove a user")
    p.add_argument("name")
    p.set_defaults(func=_runner(cmd_user_remove, "user remove"))
    p = users.add_parser("passwd", parents=common, help="set a user's password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help=password_help)
    p.set_defaults(func=_runner(cmd_user_passwd, "user passwd"))
    p = users.add_parser("role", parents=common, help="change a user's role")
    p.add_argument("name")
    p.add_argument("role", help=f"one of {roles}")
    p.set_defaults(func=_runner(cmd_user_role, "user role"))

    token = sub.add_parser("token", help="manage API tokens (for programs: billing, scripts)",
                           description=f"Manage API tokens ('Authorization: Bearer <token>'). Roles: {roles}.")
    tokens = token.add_subparsers(dest="token_command", required=True)
    p = tokens.add_parser("create", parents=common, help="create a token and print it once")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, help=f"one of {roles}")
    p.add_argument("--expires", metavar="DURATION", help="lifetime such as 90d or 12h (default: never expires)")
    p.set_defaults(func=_runner(cmd_token_create, "token create"))
    p = tokens.add_parser("list", parents=common, help="list tokens (never their secrets)")
    p.set_defaults(func=_runner(cmd_token_list, "token list"))
    p = tokens.add_parser("revoke", parents=common, help="revoke a token")
    p.add_argument("name")
    p.set_defaults(func=_runner(cmd_token_revoke, "token revoke"))
