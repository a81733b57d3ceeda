"""Archives of built bundles that an office can trust: reproducible, checksummed, optionally signed.

`sitegen package BUNDLE` writes, into `dist/` by default:

    NAME.tar.gz          every file of the bundle under NAME/, plus NAME/SHA256SUMS
    NAME.tar.gz.sha256   the archive's SHA-256, in `sha256sum` format (`sha256sum -c` checks it)
    NAME.tar.gz.sig      with --sign KEY: a raw Ed25519 signature of the archive bytes

Reproducible: the same bundle gives the same bytes, whatever the folder, the clock, the file times
on disk or the user. Entries are sorted; owners are 0/0 with empty names; modes are 0644 (files)
and 0755 (folders); every entry has one timestamp; the gzip header has no file name and time 0.
The timestamp is SOURCE_DATE_EPOCH when set, else the time of the current git commit of the folder
(so the same commit gives the same bytes, while two commits give different file times: web servers
derive ETags from them), else 0 (1970-01-01).

The signature is plain Ed25519 over the archive, the format of `openssl pkeyutl -sign -rawin`, so an
office can check it without this tool:
    openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin -in NAME.tar.gz -sigfile NAME.tar.gz.sig
Keys are PEM (PKCS#8 private, SubjectPublicKeyInfo public), as `openssl genpkey -algorithm ed25519`
writes them. The cryptography comes from the `cryptography` package, never from this project.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SUMS_NAME = "SHA256SUMS"
DEFAULT_OUT = "dist"
FILE_MODE = 0o644
DIR_MODE = 0o755


class PackageError(Exception):
    """Packaging cannot go on; the message says what is wrong and what to do."""


@dataclass
class Packaged:
    archive: Path
    checksum: Path
    signature: Path | None
    files: int
    sha256: str
    mtime: int
    mtime_source: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Verification:
    """Every check made on a received archive: `problems` empty means it can be trusted."""

    archive: Path
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- keys -----------------------------------------------------------------------------------------


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the DER public key: what `openssl pkey -pubin -in K.pub -outform DER | sha256sum` prints."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return sha256_bytes(der)


def generate_keys(prefix: Path, force: bool = False) -> tuple[Path, Path, str]:
    """Write PREFIX.key (private, mode 0600) and PREFIX.pub; return both paths and the fingerprint."""
    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub")
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} already exists; pass --force to replace it or choose another --out")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    if private_path.exists():
        private_path.unlink()
    # Created with 0600 from the start: the key is never readable by others, not even for an instant.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path, fingerprint(key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise PackageError(f"{path} is encrypted with a passphrase; sign with an unencrypted key (keep it as a CI secret)") from exc
    except ValueError as exc:
        hint = " (that is the public key: sign with the .key file)" if b"PUBLIC KEY" in data else ""
        raise PackageError(f"{path} is not a PEM private key{hint}; create a pair with `sitegen keygen`") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(f"{path} is not an Ed25519 key; create one with `sitegen keygen` or `openssl genpkey -algorithm ed25519`")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read the public key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        hint = " (that is a private key: verify with the .pub file)" if b"PRIVATE KEY" in data else ""
        raise PackageError(f"{path} is not a PEM public key{hint}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError(f"{path} is not an Ed25519 public key")
    return key


# --- packaging ------------------------------------------------------------------------------------


def archive_time(folder: Path) -> tuple[int, str]:
    """The one timestamp of every entry, and where it came from (see the module docstring)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        if not (epoch.isascii() and epoch.isdigit()):
            raise PackageError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds")
        return int(epoch), "SOURCE_DATE_EPOCH"
    try:
        done = subprocess.run(["git", "-C", str(folder), "log", "-1", "--format=%ct"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip().isdigit():
        return int(done.stdout.strip()), "the current git commit"
    return 0, "no SOURCE_DATE_EPOCH and no git commit: 1970-01-01"


def _bundle_files(folder: Path) -> tuple[list[str], list[str]]:
    """Sorted folders and files of a bundle (posix paths); refuse anything but plain files and folders."""
    folders: list[str] = []
    files: list[str] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise PackageError(f"{path} is a symbolic link; a bundle holds plain files only (rebuild it with `sitegen build`)")
        if path.is_dir():
            folders.append(relative)
        elif path.is_file():
            files.append(relative)
        else:
            raise PackageError(f"{path} is not a regular file")
    return sorted(folders), sorted(files)


def _check_manifest(folder: Path, files: list[str], contents: dict[str, bytes]) -> list[str]:
    """Compare the bundle on disk with its manifest.json; return notes, raise if a listed file changed."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return [f"{folder} has no manifest.json (not built by sitegen?): packaged as it is"]
    try:
        listed = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PackageError(f"{manifest_path} is not a sitegen manifest ({exc}); rebuild the bundle") from exc
    changed = [name for name, digest in sorted(listed.items()) if name not in contents or sha256_bytes(contents[name]) != digest]
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise PackageError(f"the bundle in {folder} differs from its manifest.json ({shown}): it was changed after the build; "
                           "rebuild it with `sitegen build` before packaging")
    extra = [name for name in files if name not in listed and name != "manifest.json"]
    return [f"{len(extra)} file(s) not in manifest.json are packaged too (e.g. {extra[0]})"] if extra else []


def _entry(name: str, mtime: int, size: int = 0, folder: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if folder else tarfile.REGTYPE
    info.mode = DIR_MODE if folder else FILE_MODE
    info.size = 0 if folder else size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def archive_bytes(name: str, folders: list[str], contents: dict[str, bytes], mtime: int) -> bytes:
    """The .tar.gz of a bundle as bytes: a function of its arguments only."""
    sums = "".join(f"{sha256_bytes(contents[path])}  {path}\n" for path in sorted(contents)).encode()
    entries: list[tuple[str, bytes | None]] = [(name, None)]
    entries += [(f"{name}/{path}", None) for path in folders]
    entries += [(f"{name}/{path}", data) for path, data in contents.items()]
    entries.append((f"{name}/{SUMS_NAME}", sums))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry_name, data in sorted(entries, key=lambda item: item[0]):
            if data is None:
                tar.addfile(_entry(entry_name, mtime, folder=True))
            else:
                tar.addfile(_entry(entry_name, mtime, len(data)), io.BytesIO(data))
    packed = io.BytesIO()
    # filename="" and mtime=0: the gzip header names no file and no time.
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=9, mtime=0) as compressed:
        compressed.write(raw.getvalue())
    return packed.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def package(folder: Path, out: Path, name: str | None = None, key_path: Path | None = None) -> Packaged:
    """Archive the bundle in `folder` as `out/NAME.tar.gz` with its checksum file (and signature)."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise PackageError(f"{folder} is not a folder; build the bundle first with `sitegen build`")
    name = name or folder.name
    key = load_private_key(key_path) if key_path else None  # fail before writing anything
    folders, files = _bundle_files(folder)
    if not files:
        raise PackageError(f"{folder} is empty; build the bundle first with `sitegen build`")
    if SUMS_NAME in files:
        raise PackageError(f"{folder / SUMS_NAME} exists, but the archive writes its own {SUMS_NAME}; remove or rename that file")
    out = out.resolve()
    if out == folder or folder in out.parents:
        raise PackageError(f"--out {out} is inside the bundle; choose a folder outside it (default: {DEFAULT_OUT}/)")
    contents = {path: (folder / path).read_bytes() for path in files}
    notes = _check_manifest(folder, files, contents)
    mtime, source = archive_time(folder)

    data = archive_bytes(name, folders, contents, mtime)
    digest = sha256_bytes(data)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{name}.tar.gz"
    checksum = out / f"{name}.tar.gz.sha256"
    signature = out / f"{name}.tar.gz.sig"
    _write_atomic(archive, data)
    _write_atomic(checksum, f"{digest}  {archive.name}\n".encode())
    if key is not None:
        _write_atomic(signature, key.sign(data))
    elif signature.exists():
        signature.unlink()  # a signature of an earlier archive would only mislead
    return Packaged(archive, checksum, signature if key else None, len(files), digest, mtime, source, notes)


# --- verification ---------------------------------------------------------------------------------


def _read_checksum_file(path: Path) -> tuple[str | None, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, None
    parts = text.strip().split()
    if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0].lower()):
        return None, None
    return parts[0].lower(), parts[1].lstrip("*")


def _parse_sums(text: str) -> tuple[dict[str, str], list[str]]:
    sums: dict[str, str] = {}
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or not path:
            bad.append(f"line {number}: {line[:80]!r}")
            continue
        sums[path] = digest.lower()
    return sums, bad


def _safe_member(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be extracted, or None when it is a plain file or folder inside the archive."""
    name = member.name
    if not (member.isfile() or member.isdir()):
        return "is not a plain file or folder (links and devices are refused)"
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        return "has a path that leaves the archive's folder"
    return None


def _check_contents(data: bytes, result: Verification) -> None:
    """Every file in the archive against the SHA256SUMS packaged with it."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        result.problems.append(f"{result.archive.name} is not a readable .tar.gz ({exc}): it is damaged or not a sitegen archive")
        return
    with tar:
        tops = {m.name.split("/", 1)[0] for m in members}
        if len(tops) != 1:
            result.problems.append(f"{result.archive.name} should hold one folder, it holds {len(tops)}: {', '.join(sorted(tops))}")
            return
        top = tops.pop()
        files: dict[str, bytes] = {}
        refused = False
        for member in members:
            unsafe = _safe_member(member)
            if unsafe:
                refused = True
                result.problems.append(f"archive entry {member.name} {unsafe}")
            elif member.isfile():
                handle = tar.extractfile(member)
                files[posixpath.relpath(member.name, top)] = handle.read() if handle else b""
    if refused:
        return
    sums_data = files.pop(SUMS_NAME, None)
    if sums_data is None:
        result.problems.append(f"{top}/{SUMS_NAME} is missing from the archive: it was not made by `sitegen package`, or was repacked")
        return
    sums, bad = _parse_sums(sums_data.decode("utf-8", errors="replace"))
    for line in bad:
        result.problems.append(f"{top}/{SUMS_NAME} {line} is not `SHA256  PATH`: the checksum list was altered")
    changed = [path for path in sorted(sums) if path in files and sha256_bytes(files[path]) != sums[path]]
    missing = [path for path in sorted(sums) if path not in files]
    unlisted = [path for path in sorted(files) if path not in sums]
    for path in changed:
        result.problems.append(f"{top}/{path}: its content does not match {top}/{SUMS_NAME} (the file was changed after packaging)")
    for path in missing:
        result.problems.append(f"{top}/{path} is listed in {top}/{SUMS_NAME} but missing from the archive")
    for path in unlisted:
        result.problems.append(f"{top}/{path} is in the archive but not in {top}/{SUMS_NAME} (a file was added after packaging)")
    if not (bad or changed or missing or unlisted):
        result.checked.append(f"all {len(files)} files match {top}/{SUMS_NAME}")


def verify(archive: Path, key_path: Path | None = None, checksum_path: Path | None = None,
           signature_path: Path | None = None) -> Verification:
    """Check a received archive: its checksum file, every file inside, and (with a key) the signature.

    Every check runs, so one report names everything that is wrong.
    """
    result = Verification(archive)
    try:
        data = archive.read_bytes()
    except OSError as exc:
        result.problems.append(f"cannot read {archive}: {exc.strerror}")
        return result
    digest = sha256_bytes(data)

    checksum_path = checksum_path or archive.with_name(archive.name + ".sha256")
    expected, listed_name = _read_checksum_file(checksum_path)
    if not checksum_path.exists():
        result.problems.append(f"the checksum file {checksum_path.name} is missing: it is written next to the archive by `sitegen package`")
    elif expected is None:
        result.problems.append(f"{checksum_path.name} is not a `sha256sum` line (SHA256  NAME): the checksum file was altered or damaged")
    elif expected != digest:
        result.problems.append(f"{checksum_path.name} does not match the archive: it says {expected}, the archive's SHA-256 is "
                               f"{digest} (the archive or its checksum file was changed after packaging)")
    else:
        result.checked.append(f"the archive's SHA-256 matches {checksum_path.name}")
        if listed_name != archive.name:
            result.checked.append(f"(the checksum file names it {listed_name})")

    _check_contents(data, result)

    if key_path is not None:
        signature_path = signature_path or archive.with_name(archive.name + ".sig")
        try:
            public = load_public_key(key_path)
        except PackageError as exc:
            result.problems.append(str(exc))
            return result
        key_print = fingerprint(public)
        if not signature_path.is_file():
            result.problems.append(f"the signature {signature_path.name} is missing: the archive was not signed (package it with --sign KEY)")
        else:
            try:
                public.verify(signature_path.read_bytes(), data)
                result.checked.append(f"the signature is valid for the key {key_path.name} (fingerprint {key_print})")
            except InvalidSignature:
                result.problems.append(f"the signature {signature_path.name} does not match the key {key_path.name} (fingerprint {key_print}): "
                                       "the archive was not signed by this key, or was changed after signing")
    return result
