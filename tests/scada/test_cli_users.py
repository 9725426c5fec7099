"""``scada user …`` and ``scada token …`` through scada.cli.main (no subprocesses)."""

from __future__ import annotations

import getpass
import io
import sys
import textwrap
import time

import pytest
from argon2 import PasswordHasher

from scada import auth
from scada.cli import main
from scada.store import OpsStore

FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    monkeypatch.setattr(auth, "PASSWORD_HASHER", FAST)


@pytest.fixture()
def store_path(tmp_path):
    return str(tmp_path / "ops.db")


@pytest.fixture()
def typed(monkeypatch):
    """Answer getpass prompts from a list; return the list of prompts seen."""
    prompts: list[str] = []
    answers: list[str] = []

    def fake(prompt="Password: ", stream=None):
        prompts.append(prompt)
        if not answers:
            raise EOFError
        return answers.pop(0)

    monkeypatch.setattr(getpass, "getpass", fake)

    def set_answers(*values: str) -> list[str]:
        answers[:] = list(values)
        return prompts

    return set_answers


def stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def open_store(path: str) -> OpsStore:
    return OpsStore(path)


def test_user_add_asks_twice_and_stores_an_argon2_hash(capsys, typed, store_path):
    """The password is typed twice; the store keeps an argon2id hash that verifies."""
    prompts = typed("s3cret-pass", "s3cret-pass")
    code, out, err = run(capsys, "user", "add", "ivanov", "--role", "operator", "--store", store_path)
    assert code == 0 and out == "" and "'ivanov' added with role operator" in err
    assert len(prompts) == 2
    store = open_store(store_path)
    user = store.user("ivanov")
    assert user.role == "operator" and user.password_hash.startswith("$argon2id$")
    assert auth.verify_password(user.password_hash, "s3cret-pass") == (True, None)
    store.close()


@pytest.mark.parametrize("answers, message", [
    (("s3cret-pass", "s3cret-pasS"), "the passwords do not match"),
    (("short", "short"), "the password is too short: at least 8 characters"),
    ((), "no password given"),
])
def test_user_add_password_problems(capsys, typed, store_path, answers, message):
    """Mismatch, too short, or no terminal input: one line, status 1, no user created."""
    typed(*answers)
    code, out, err = run(capsys, "user", "add", "ivanov", "--role", "crew", "--store", store_path)
    assert code == 1 and err == f"scada user add: {message}\n"
    store = open_store(store_path)
    assert store.users() == []
    store.close()


def test_password_from_stdin(capsys, monkeypatch, store_path):
    """--password-stdin reads one line (newline and CR stripped, spaces kept)."""
    stdin(monkeypatch, " pass word \r\nnext line\n")
    assert run(capsys, "user", "add", "bot", "--role", "viewer", "--password-stdin", "--store", store_path)[0] == 0
    store = open_store(store_path)
    assert auth.verify_password(store.user("bot").password_hash, " pass word ")[0]
    store.close()
    stdin(monkeypatch, "")
    code, _, err = run(capsys, "user", "add", "bot2", "--role", "viewer", "--password-stdin", "--store", store_path)
    assert code == 1 and "at least 8" in err


@pytest.mark.parametrize("argv, message", [
    (["user", "add", "ivanov", "--role", "boss"],
     "scada user add: unknown role 'boss'; valid roles: viewer, operator, crew, engineer, billing, integration, admin\n"),
    (["user", "add", "bad name", "--role", "crew"], "scada user add: 'bad name' is not a valid user name"),
    (["user", "add", "system", "--role", "crew"], "scada user add: 'system' is reserved"),
    (["user", "remove", "nobody"], "scada user remove: no user 'nobody'\n"),
    (["user", "passwd", "nobody"], "scada user passwd: no user 'nobody'\n"),
    (["user", "role", "nobody", "crew"], "scada user role: no user 'nobody'\n"),
    (["user", "role", "nobody", "king"], "scada user role: unknown role 'king'"),
    (["token", "create", "--name", "x", "--role", "root"], "scada token create: unknown role 'root'"),
    (["token", "create", "--name", "x y", "--role", "viewer"], "'x y' is not a valid token name"),
    (["token", "create", "--name", "x", "--role", "viewer", "--expires", "soon"],
     "--expires: 'soon' is not a duration"),
    (["token", "create", "--name", "x", "--role", "viewer", "--expires", "0s"], "give a positive duration"),
    (["token", "revoke", "nothing"], "scada token revoke: no token 'nothing'\n"),
])
def test_bad_input_is_one_line_and_status_1(capsys, typed, store_path, argv, message):
    """Each mistake gets one clear line on stderr and exit status 1."""
    typed("s3cret-pass", "s3cret-pass")
    code, out, err = run(capsys, *argv, "--store", store_path)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err, err


def test_duplicates_are_refused(capsys, typed, store_path):
    """A second user or token of the same name is refused without asking for a password."""
    typed("s3cret-pass", "s3cret-pass")
    run(capsys, "user", "add", "ivanov", "--role", "crew", "--store", store_path)
    prompts = typed("other-pass", "other-pass")
    prompts.clear()
    code, _, err = run(capsys, "user", "add", "ivanov", "--role", "admin", "--store", store_path)
    assert code == 1 and err == "scada user add: user 'ivanov' already exists\n" and prompts == []
    run(capsys, "token", "create", "--name", "billing", "--role", "billing", "--store", store_path)
    code, out, err = run(capsys, "token", "create", "--name", "billing", "--role", "billing", "--store", store_path)
    assert code == 1 and out == "" and err == "scada token create: token 'billing' already exists\n"


def test_user_list_passwd_role_remove(capsys, typed, store_path, monkeypatch):
    """The life of a user: list, new password (sessions end), new role, removal."""
    code, out, err = run(capsys, "user", "list", "--store", store_path)
    assert code == 0 and out == "" and "no users" in err
    for name, role in (("petrov", "engineer"), ("ivanov", "crew")):
        typed("s3cret-pass", "s3cret-pass")
        run(capsys, "user", "add", name, "--role", role, "--store", store_path)
    code, out, _ = run(capsys, "user", "list", "--store", store_path)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "ROLE", "CREATED", "CHANGED"]
    assert [line.split()[:2] for line in lines[1:]] == [["ivanov", "crew"], ["petrov", "engineer"]]
    assert "argon2" not in out

    store = open_store(store_path)
    store.create_session("ivanov", "session-hash", 3600)
    store.close()
    stdin(monkeypatch, "new-password\n")
    code, _, err = run(capsys, "user", "passwd", "ivanov", "--password-stdin", "--store", store_path)
    assert code == 0 and "sessions ended" in err
    store = open_store(store_path)
    assert auth.verify_password(store.user("ivanov").password_hash, "new-password")[0]
    assert store.session_by_hash("session-hash") is None
    store.close()

    assert run(capsys, "user", "role", "ivanov", "operator", "--store", store_path)[0] == 0
    assert run(capsys, "user", "remove", "petrov", "--store", store_path)[0] == 0
    store = open_store(store_path)
    assert [(u.name, u.role) for u in store.users()] == [("ivanov", "operator")]
    store.close()


def test_token_create_prints_only_the_token(capsys, store_path):
    """stdout is the token and a newline (TOKEN=$(scada token create ...)); the store keeps its hash only."""
    before = time.time()
    code, out, err = run(capsys, "token", "create", "--name", "1c-billing", "--role", "billing", "--expires", "90d",
                         "--store", store_path)
    assert code == 0 and out.endswith("\n") and out.count("\n") == 1
    token = out.strip()
    assert token.startswith("sct_") and "shown only this once" in err and token not in err
    store = open_store(store_path)
    found = store.token_by_hash(auth.token_hash(token))
    assert found.name == "1c-billing" and found.role == "billing"
    assert before + 90 * 86400 <= found.expires <= time.time() + 90 * 86400
    store.close()


def test_token_list_and_revoke(capsys, store_path):
    """The list shows names, roles and expiry, never secrets; revoke removes a token."""
    _, never, _ = run(capsys, "token", "create", "--name", "wall", "--role", "viewer", "--store", store_path)
    store = open_store(store_path)
    store.add_token("brief", "crew", auth.token_hash("sct_brief"), expires=time.time() - 1)
    store.close()
    code, out, _ = run(capsys, "token", "list", "--store", store_path)
    assert code == 0 and never.strip() not in out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "never" in rows["wall"] and "(expired)" in rows["brief"] and " crew " in rows["brief"]
    assert run(capsys, "token", "revoke", "brief", "--store", store_path)[0] == 0
    _, out, _ = run(capsys, "token", "list", "--store", store_path)
    assert "brief" not in out and "wall" in out


SITE = textwrap.dedent("""\
    site: {name: cli test}
    store: {path: var/ops.db}
    """)


def test_store_path_comes_from_the_site_file_relative_to_the_cwd(capsys, tmp_path, monkeypatch):
    """-c FILE uses its store.path, relative to the working directory; without -c the default site file."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "site.yaml").write_text(SITE)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, _ = run(capsys, "token", "create", "--name", "a", "--role", "viewer",
                       "-c", str(tmp_path / "config" / "site.yaml"))
    assert code == 0 and (work / "var" / "ops.db").is_file()
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "token", "create", "--name", "b", "--role", "viewer")
    assert code == 0 and (tmp_path / "var" / "ops.db").is_file()


def test_a_bad_site_file_reports_its_problems(capsys, tmp_path):
    """A site file that does not load: its problems as FILE:LINE, status 1, nothing else."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: x}\nstore: {path: ''}\n")
    code, out, err = run(capsys, "user", "list", "-c", str(bad))
    assert code == 1 and out == "" and f"{bad}:2:" in err


def test_a_broken_store_is_one_line(capsys, tmp_path):
    """A store file that is not a database: one line naming it, status 1."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    code, _, err = run(capsys, "user", "list", "--store", str(junk))
    assert code == 1 and err.count("\n") == 1 and "junk.db" in err


def test_the_server_and_the_cli_share_the_store(capsys, typed, store_path):
    """A user added while the server holds the store open is visible to the server at once (WAL)."""
    server = OpsStore(store_path)
    typed("s3cret-pass", "s3cret-pass")
    assert run(capsys, "user", "add", "ivanov", "--role", "crew", "--store", store_path)[0] == 0
    assert server.user("ivanov").role == "crew"
    server.close()


def test_help_names_the_roles(capsys):
    """scada user --help lists the roles."""
    with pytest.raises(SystemExit):
        main(["user", "--help"])
    assert "viewer, operator, crew, engineer, billing, integration, admin" in " ".join(capsys.readouterr().out.split())


def test_run_listen_keeps_the_auth_settings(tmp_path, monkeypatch):
    """scada run --listen replaces only the address: api.auth and api.session_ttl stay as the file says."""
    import scada.app

    site = tmp_path / "site.yaml"
    site.write_text("site: {name: x}\napi: {auth: false, session_ttl: 1h}\n")
    seen = {}

    def fake_run(cfg, **kwargs):
        seen["api"] = cfg.api
        return 0

    monkeypatch.setattr(scada.app, "run", fake_run)
    assert main(["run", "-c", str(site), "--listen", "127.0.0.1:9999"]) == 0
    assert (seen["api"].listen, seen["api"].auth, seen["api"].session_ttl) == ("127.0.0.1:9999", False, 3600.0)
