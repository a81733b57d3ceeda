"""`sitegen package`, `sitegen verify` and `sitegen keygen`, as a site's CI and an IP office use them.

The packager's promise: the same bundle (the same commit) gives the same archive bytes, wherever and
whenever it is packaged; the office's promise: `verify` says clearly when a file, a checksum or the
signature does not match, and exits 1.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import MEDIUM_SITE, build_ok, copy_demo_site, run

from ipo_sitegen.package import SUMS_NAME, archive_bytes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo site (this repository's content/) built once into a temporary site folder."""
    site = copy_demo_site(tmp_path_factory.mktemp("demo"))
    build_ok(site)
    return site


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("ci", "other"):
        result = run(["keygen", "--out", folder / name])
        assert result.exit_code == 0, result.output
    return {"key": folder / "ci.key", "pub": folder / "ci.pub", "other": folder / "other.pub", "other.key": folder / "other.key"}


def package_ok(site: Path, bundle: str, out: Path, *extra, env: dict[str, str] | None = None) -> Path:
    result = run(["package", bundle, "--root", site, "--out", out, *extra], env=env)
    assert result.exit_code == 0, result.output
    return out / f"{Path(bundle).name}.tar.gz"


def verify(archive: Path, *extra) -> tuple[int, str]:
    result = run(["verify", archive, *extra])
    return result.exit_code, result.output


def repack(archive: Path, change) -> None:
    """Rewrite the archive with `change(name, data) -> data` applied to every file (as a tamperer would)."""
    members = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else None
            members.append((member, data))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            if data is None:
                tar.addfile(member)
            else:
                data = change(member.name, data)
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    archive.write_bytes(gzip.compress(raw.getvalue(), mtime=0))


def rewrite_checksum(archive: Path) -> None:
    """Make ARCHIVE.sha256 match the (tampered) archive again."""
    import hashlib

    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\n")


# ---- reproducibility -------------------------------------------------------------------------------
def test_packaging_twice_gives_identical_bytes(demo, tmp_path):
    first = package_ok(demo, "restricted", tmp_path / "one")
    # Everything that must not matter: other file times and modes on disk, another output folder,
    # another location of the bundle, another umask.
    bundle = demo / "build" / "restricted"
    for number, path in enumerate(sorted(bundle.rglob("*"))):
        os.utime(path, (1_000_000 + number, 2_000_000_000 - number))
        if path.is_file() and number % 3 == 0:
            path.chmod(0o600 if number % 2 else 0o664)
    moved = tmp_path / "elsewhere" / "restricted"
    shutil.copytree(bundle, moved)
    previous = os.umask(0o077)
    try:
        second = package_ok(demo, "restricted", tmp_path / "two")
        third = package_ok(demo, str(moved), tmp_path / "three")
    finally:
        os.umask(previous)
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()
    assert (tmp_path / "one" / "restricted.tar.gz.sha256").read_bytes() == (tmp_path / "three" / "restricted.tar.gz.sha256").read_bytes()


def test_archive_entries_are_normalised(demo, tmp_path):
    archive = package_ok(demo, "public", tmp_path, env={"SOURCE_DATE_EPOCH": "1767225600"})
    data = archive.read_bytes()
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0, "gzip header flags: no file name, no comment"
    assert data[4:8] == b"\0\0\0\0", "gzip header time is 0"
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "public"
    assert all(name == "public" or name.startswith("public/") for name in names)
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 1767225600
        assert member.mode == (0o755 if member.isdir() else 0o644)
        assert member.isdir() or member.isfile()
    built = sorted(p.relative_to(demo / "build" / "public").as_posix() for p in (demo / "build" / "public").rglob("*") if p.is_file())
    assert sorted(n[len("public/"):] for n, m in zip(names, members) if m.isfile()) == sorted(built + [SUMS_NAME])


def test_archive_bytes_are_a_function_of_content_only():
    contents = {"b.html": b"B", "a/index.html": b"A"}
    one = archive_bytes("x", ["a"], contents, 0)
    assert one == archive_bytes("x", ["a"], dict(reversed(list(contents.items()))), 0)
    assert one != archive_bytes("x", ["a"], contents, 1)


def test_same_commit_gives_same_bytes(site_factory, tmp_path):
    """From git: build and package, build again from the same commit, package again."""
    site = site_factory(MEDIUM_SITE)
    env = {**os.environ, "GIT_AUTHOR_DATE": "2026-01-05T10:00:00+00:00", "GIT_COMMITTER_DATE": "2026-01-05T10:00:00+00:00",
           "GIT_AUTHOR_NAME": "Editor", "GIT_AUTHOR_EMAIL": "editor@example.org",
           "GIT_COMMITTER_NAME": "Editor", "GIT_COMMITTER_EMAIL": "editor@example.org"}
    (site / ".gitignore").write_text("/build/\n/dist/\n")
    for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "Initial content"]):
        subprocess.run(["git", *command], cwd=site, env=env, check=True, capture_output=True)
    build_ok(site)
    first = package_ok(site, "restricted", tmp_path / "first").read_bytes()
    shutil.rmtree(site / "build")
    build_ok(site)
    result = run(["package", "restricted", "--root", site])
    assert result.exit_code == 0, result.output
    assert "the current git commit" in result.output
    second = (site / "dist" / "restricted.tar.gz").read_bytes()  # the documented default folder
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(second), mode="r:gz") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1767607200}  # the commit's time


# ---- verification ----------------------------------------------------------------------------------
@pytest.fixture
def signed(demo, keys, tmp_path) -> Path:
    return package_ok(demo, "restricted", tmp_path / "dist", "--sign", keys["key"])


def test_verify_accepts_an_intact_signed_archive(signed, keys):
    code, output = verify(signed, "--key", keys["pub"])
    assert code == 0, output
    assert "matches restricted.tar.gz.sha256" in output and "match restricted/SHA256SUMS" in output
    assert "signature is valid" in output
    code, output = verify(signed)
    assert code == 0 and "NOT checked" in output


def test_signature_and_checksums_work_with_standard_tools(signed, keys):
    """Offices without sitegen: sha256sum -c, and openssl for the Ed25519 signature."""
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "--quiet", "restricted.tar.gz.sha256"], cwd=signed.parent, check=True)
    if shutil.which("openssl"):
        done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", keys["pub"], "-rawin", "-in", signed,
                               "-sigfile", f"{signed}.sig"], capture_output=True, text=True)
        if "rawin" not in done.stderr:  # OpenSSL older than 3.0 cannot check Ed25519 file signatures
            assert done.returncode == 0 and "Verified Successfully" in done.stdout, done.stderr


def test_verify_rejects_a_modified_file(signed, keys):
    repack(signed, lambda name, data: data.replace(b"</main>", b"<p>Call +1 555 0100 now.</p></main>")
           if name == "restricted/access/index.html" else data)
    code, output = verify(signed, "--key", keys["pub"])
    assert code == 1
    assert "does not match the archive" in output  # the .sha256 still describes the original
    assert "restricted/access/index.html: its content does not match restricted/SHA256SUMS (the file was changed after packaging)" in output
    assert "signature" in output and "does not match" in output
    assert "Verification FAILED" in output and "Do not use this archive" in output
    # A tamperer who also rewrites the .sha256 is still caught, by the per-file list and the signature.
    rewrite_checksum(signed)
    code, output = verify(signed, "--key", keys["pub"])
    assert code == 1 and "matches restricted.tar.gz.sha256" not in output
    assert "restricted/access/index.html: its content does not match" in output and "was changed after signing" in output
    code, output = verify(signed)
    assert code == 1 and "restricted/access/index.html: its content does not match" in output


def test_verify_rejects_an_added_or_removed_file(signed, keys):
    with tarfile.open(signed, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for member, data in members:
            if member.name == "restricted/robots.txt":
                continue
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
        extra = tarfile.TarInfo("restricted/extra.html")
        extra.size = 5
        tar.addfile(extra, io.BytesIO(b"hello"))
    signed.write_bytes(gzip.compress(raw.getvalue()))
    code, output = verify(signed)
    assert code == 1
    assert "restricted/robots.txt is listed in restricted/SHA256SUMS but missing from the archive" in output
    assert "restricted/extra.html is in the archive but not in restricted/SHA256SUMS" in output


def test_verify_rejects_a_modified_checksum_file(signed, keys):
    checksum = signed.with_name(signed.name + ".sha256")
    digest, name = checksum.read_text().split()
    checksum.write_text(f"{'0' * 64}  {name}\n")
    code, output = verify(signed, "--key", keys["pub"])
    assert code == 1
    assert f"restricted.tar.gz.sha256 does not match the archive: it says {'0' * 64}, the archive's SHA-256 is {digest}" in output
    checksum.write_text("not a checksum\n")
    code, output = verify(signed, "--key", keys["pub"])
    assert code == 1 and "is not a `sha256sum` line" in output
    checksum.unlink()
    code, output = verify(signed, "--key", keys["pub"])
    assert code == 1 and "checksum file restricted.tar.gz.sha256 is missing" in output


def test_verify_rejects_a_modified_checksum_list_inside(signed, keys):
    def forge(name: str, data: bytes) -> bytes:
        if name != f"restricted/{SUMS_NAME}":
            return data
        lines = data.decode().splitlines()
        lines = [("f" * 64 + line[64:]) if line.endswith("  index.html") else line for line in lines]
        return ("\n".join(lines) + "\n").encode()

    repack(signed, forge)
    rewrite_checksum(signed)
    code, output = verify(signed, "--key", keys["pub"])
    assert code == 1
    assert "restricted/index.html: its content does not match restricted/SHA256SUMS" in output
    assert "was changed after signing" in output


def test_verify_rejects_a_wrong_key(signed, keys):
    code, output = verify(signed, "--key", keys["other"])
    assert code == 1
    assert "does not match the key other.pub" in output and "not signed by this key" in output
    assert "matches restricted.tar.gz.sha256" not in output or "Verification FAILED" in output
    code, output = verify(signed, "--key", keys["other.key"])
    assert code == 1 and "that is a private key" in output


def test_verify_needs_the_signature_when_a_key_is_given(demo, keys, tmp_path):
    archive = package_ok(demo, "restricted", tmp_path)
    code, output = verify(archive, "--key", keys["pub"])
    assert code == 1 and "restricted.tar.gz.sig is missing" in output and "--sign" in output


def test_verify_refuses_links_and_escaping_paths(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        link = tarfile.TarInfo("b/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        escape = tarfile.TarInfo("b/../../evil")
        tar.addfile(escape, io.BytesIO(b""))
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    rewrite_checksum(archive)
    code, output = verify(archive)
    assert code == 1
    assert "b/passwd is not a plain file or folder" in output and "b/../../evil has a path that leaves" in output


def test_verify_names_a_damaged_archive(tmp_path):
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"not gzip at all")
    rewrite_checksum(archive)
    code, output = verify(archive)
    assert code == 1 and "is not a readable .tar.gz" in output


# ---- keys and packaging errors ---------------------------------------------------------------------
def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    result = run(["keygen", "--out", tmp_path / "office"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "office.key").stat().st_mode) == 0o600
    assert (tmp_path / "office.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "office.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    fingerprint = result.output.split("Fingerprint (SHA-256 of the DER public key): ")[1].split()[0]
    if shutil.which("openssl"):
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in", tmp_path / "office.pub", "-outform", "DER"], capture_output=True, check=True).stdout
        import hashlib

        assert hashlib.sha256(der).hexdigest() == fingerprint  # what the signing-keys page tells offices to run
    again = run(["keygen", "--out", tmp_path / "office"])
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output
    assert run(["keygen", "--out", tmp_path / "office", "--force"]).exit_code == 0


def test_package_errors_are_clear(demo, keys, tmp_path):
    result = run(["package", "nosuch", "--root", demo])
    assert result.exit_code == 2 and "neither a bundle name nor a folder" in result.output and "restricted" in result.output
    result = run(["package", "restricted", "--root", demo, "--out", tmp_path, "--sign", keys["pub"]])
    assert result.exit_code == 1 and "that is the public key" in result.output
    assert not (tmp_path / "restricted.tar.gz").exists()
    copy = tmp_path / "copy" / "public"
    shutil.copytree(demo / "build" / "public", copy)
    (copy / "index.html").write_text("edited by hand")
    result = run(["package", copy, "--root", demo, "--out", tmp_path / "out"])
    assert result.exit_code == 1 and "differs from its manifest.json (index.html)" in result.output and "sitegen build" in result.output
    (copy / "index.html").unlink()
    (copy / "index.html").symlink_to(demo / "build" / "public" / "index.html")
    result = run(["package", copy, "--root", demo, "--out", tmp_path / "out"])
    assert result.exit_code == 1 and "symbolic link" in result.output


# ---- the CI examples -------------------------------------------------------------------------------
def test_ci_examples_publish_only_the_public_bundle():
    import yaml

    github = (REPO / "examples" / "github-actions.yml").read_text()
    gitlab = (REPO / "examples" / "gitlab-ci.yml").read_text()
    for text in (github, gitlab):
        yaml.safe_load(text)
        for command in ("sitegen build --quiet", "sitegen audit", "sitegen package restricted", "sitegen verify dist/restricted.tar.gz"):
            assert command in text
        assert "build/restricted" not in text.replace("never build/restricted/ itself", "")
    assert "fetch-depth: 0" in github and "path: build/public" in github and "path: dist/" in github
    assert "GIT_DEPTH: 0" in gitlab and "mv build/public public" in gitlab and "access: developer" in gitlab
