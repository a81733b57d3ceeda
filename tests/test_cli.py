"""The command line as a new user meets it: init, build, new, help, and usage errors.

Story: an editor installs ipo-sitegen, runs `sitegen init`, builds, adds a page with `sitegen new`;
CI calls the real `sitegen` executable and relies on its exit codes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from helpers import (
    BUNDLES,
    build,
    build_ok,
    has_page,
    html,
    make_site,
    page,
    read_tree,
    run,
)

HOME = page("Home", "public", "Welcome.")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def test_init_creates_a_site_that_builds(tmp_path):
    target = tmp_path / "support"
    result = run(["init", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "sitegen.toml").is_file()
    assert (target / "content/_index.md").is_file()

    build_ok(target)
    for bundle in BUNDLES:
        assert (target / "build" / bundle / "index.html").is_file()
        assert (target / "build" / bundle / "manifest.json").is_file()
    # The starter shows the gate at work: the registered page is locked in public only.
    assert not has_page(target, "public", "guides/installation/")
    assert has_page(target, "restricted", "guides/installation/")
    assert "Registered readers see this paragraph" not in html(target, "public")
    assert "Registered readers see this paragraph" in html(target, "restricted")
    assert has_page(target, "internal", "staff/") and not has_page(target, "restricted", "staff/")


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = run(["init", str(tmp_path / "busy")])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "busy" / "sitegen.toml").exists()


def test_new_creates_a_page_that_becomes_visible_once_published(tmp_path):
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/guides/_index.md": page("Guides", "public")})
    result = run(["new", "guides/x.md", "--root", str(site)])
    assert result.exit_code == 0, result.output
    created = site / "content/guides/x.md"
    text = created.read_text()
    assert text.startswith("---\n")
    assert "title: X" in text
    assert "draft: true" in text

    # A new page is a draft: in no bundle until it is published (or --drafts).
    build_ok(site)
    assert not any(has_page(site, bundle, "guides/x/") for bundle in BUNDLES)
    build_ok(site, "--drafts")
    assert has_page(site, "public", "guides/x/")  # the audience comes from the guides section

    created.write_text(text.replace("draft: true", "draft: false"))
    build_ok(site)
    assert has_page(site, "public", "guides/x/")
    assert "<h1>X</h1>" in html(site, "public", "guides/x/")


def test_new_with_title_and_audience(tmp_path):
    site = make_site(tmp_path, {"content/_index.md": HOME})
    result = run(["new", "members/offices.md", "--root", str(site), "--title", "Office list: 2026", "--audience", "registered"])
    assert result.exit_code == 0, result.output
    text = (site / "content/members/offices.md").read_text()
    assert "audience: registered" in text

    build_ok(site, "--drafts")
    assert has_page(site, "restricted", "members/offices/")
    assert not has_page(site, "public", "members/offices/")
    assert "Office list: 2026" in html(site, "restricted", "members/offices/")


@pytest.mark.parametrize(
    "args, message",
    [
        (["new", "../outside.md"], "not a safe path"),
        (["new", "guides/x.md", "--audience", "secret"], "unknown audience"),
        (["new", "exists.md"], "already exists"),
        (["new", "guides/"], "is not a page file"),  # (it made guides.md: a duplicate URL of the section)
        (["new", "guides/notes.txt"], "is not a page file"),  # (it made notes.txt.md)
    ],
    ids=["escape", "bad-audience", "exists", "a-folder", "another-extension"],
)
def test_new_refuses_bad_requests_with_a_usage_error(tmp_path, args, message):
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/exists.md": page("Exists", "public")})
    result = run([*args, "--root", str(site)])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "outside.md").exists() and not (site / "outside.md").exists()
    assert (site / "content/exists.md").read_text() == page("Exists", "public")


@pytest.mark.parametrize("command", [[], ["build"], ["check"], ["init"], ["new"], ["audit"]])
def test_help_exits_zero_for_every_command(command):
    result = run([*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if command:
        assert command[0] in result.output


def test_help_of_build_lists_its_options():
    result = run(["build", "--help"])
    for option in ("--root", "--bundle", "--out", "--drafts", "--strict", "--jobs", "--quiet"):
        assert option in result.output, option


def test_unknown_bundle_is_a_usage_error(tmp_path):
    site = make_site(tmp_path, {"content/_index.md": HOME})
    result = build(site, "--bundle", "nope")
    assert result.exit_code == 2
    assert "nope" in result.output
    assert "public" in result.output  # the configured bundles are listed as the fix
    assert not (site / "build").exists()


def test_missing_config_is_reported_with_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    result = build(tmp_path / "empty")
    assert result.exit_code == 1
    assert "sitegen.toml" in result.stderr and "sitegen init" in result.stderr


def test_check_validates_without_writing(tmp_path):
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/a.md": page("A", "public")})
    result = run(["check", "--root", str(site)])
    assert result.exit_code == 0, result.output
    assert ": error:" not in result.output
    assert not (site / "build").exists()

    (site / "content/b.md").write_text(page("B", "public", "See [c](c.md)."), encoding="utf-8")
    result = run(["check", "--root", str(site)])
    assert result.exit_code == 1
    assert "content/b.md:6: error:" in result.stderr
    assert not (site / "build").exists()


def test_python_dash_m_runs_the_same_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ipo_sitegen", "--help"], capture_output=True, text=True,
                            env=clean_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "build" in result.stdout


def test_real_sitegen_executable_builds_and_fails_with_exit_codes(tmp_path):
    executable = shutil.which("sitegen")
    assert executable, "the sitegen command is not on PATH (pip install -e .)"
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/a.md": page("A guide", body="Hello."),
    })

    ok = subprocess.run([executable, "build", "--root", str(site), "-q"], capture_output=True, text=True,
                        env=clean_env(), timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (site / "build/public/guides/a/index.html").is_file()
    snapshot = read_tree(site / "build")

    (site / "content/guides/b.md").write_text(page("B", "examiners"), encoding="utf-8")
    bad = subprocess.run([executable, "build", "-q"], cwd=site, capture_output=True, text=True,
                         env=clean_env(), timeout=120)
    assert bad.returncode == 1
    assert "content/guides/b.md:3: error: unknown audience 'examiners'" in bad.stderr
    assert bad.stdout == ""  # problems go to stderr
    assert read_tree(site / "build") == snapshot

    usage = subprocess.run([executable, "build", "--root", str(site), "--bundle", "nope"], capture_output=True,
                           text=True, env=clean_env(), timeout=120)
    assert usage.returncode == 2
    assert "nope" in usage.stderr


# -- Interruptions: Ctrl-C, SIGTERM, SIGKILL -------------------------------------------------------


def _many_pages(tmp_path, count: int = 400):
    files = {"content/_index.md": HOME, "content/guides/_index.md": page("Guides", "public")}
    for number in range(count):
        body = "\n\n".join(f"Paragraph {k} of guide {number}: offices read the words of this guide with care." for k in range(12))
        files[f"content/guides/g{number}.md"] = page(f"Guide {number}", body=body)
    return make_site(tmp_path, files)


def _staging(site):
    return sorted(p.name for p in (site / "build").iterdir() if p.name.startswith(".sitegen-staging-"))


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_build_stopped_by_a_signal_cleans_up_and_exits_130(tmp_path, how):
    """A CI job cancelled (SIGTERM) or Ctrl-C (SIGINT to the process group): the staging folder goes,
    the last output stays byte for byte, no worker is left behind, and the exit code is 130."""
    import signal
    import time

    site = _many_pages(tmp_path)
    build_ok(site, "--jobs", "2")
    snapshot = read_tree(site / "build")
    (site / "content/guides/g1.md").write_text(page("Guide one, edited", body="Edited."), encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "ipo_sitegen", "build", "--root", str(site), "-q", "--no-cache", "--jobs", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(), start_new_session=True)
    deadline = time.monotonic() + 60
    while not _staging(site) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the build ended before it could be interrupted: make the site larger"
    time.sleep(0.3)  # (into the rendering and writing, with workers running)
    if how == "SIGTERM":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Interrupted" in err, err
    assert _staging(site) == []
    assert read_tree(site / "build") == snapshot
    time.sleep(0.5)
    leftover = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes of the stopped build still running: {leftover}"


def test_a_staging_folder_is_removed_once_the_build_that_made_it_is_gone(tmp_path):
    """SIGKILL (or a machine stopped) leaves the staging folder: the next build removes it, however
    young, but never one a running build still writes in."""
    import signal

    from ipo_sitegen.write import clean_stale_staging

    out = tmp_path / "build"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom ipo_sitegen.write import staging_folder\n"
                               "print(staging_folder(Path(sys.argv[1])), flush=True)\ntime.sleep(120)\n", str(out)],
                              stdout=subprocess.PIPE, text=True, env=clean_env())
    try:
        folder = holder.stdout.readline().strip()
        assert folder and os.path.isdir(folder)
        clean_stale_staging(out)
        assert os.path.isdir(folder), "removed the staging folder of a build that is still running"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    clean_stale_staging(out)
    assert not os.path.exists(folder)


@pytest.mark.parametrize("epoch", ["abc", "99999999999999", "-5", "１７９０"])
def test_a_source_date_epoch_that_is_no_time_is_a_usage_error(tmp_path, epoch):
    """Quietly taking today would make the build unreproducible; a year past 9999 was a traceback."""
    site = make_site(tmp_path, {"content/_index.md": HOME})
    result = run(["build", "--root", str(site), "-q"], env={"SOURCE_DATE_EPOCH": epoch})
    assert result.exit_code == 2 and f"SOURCE_DATE_EPOCH='{epoch}' is not a time" in result.stderr, result.output
    assert not (site / "build").exists()
