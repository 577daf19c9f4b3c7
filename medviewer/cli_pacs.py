"""``medviewer pacs``: echo, find, get, move, send and listen (see :mod:`medviewer.net`).

NODE is a configured node's name (``pacs-nodes.json`` in the user's config folder),
``AET@HOST:PORT`` (DIMSE) or an ``http(s)://`` DICOMweb base URL (QIDO-RS for echo and find,
WADO-RS for get, STOW-RS for send). medviewer's own AE title is ``--aet``, else ``MEDVIEWER``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medviewer.core.errors import NetworkError

FIND_LEVELS = ("patient", "study", "series")


def add_parser(sub: Any) -> None:
    """Add ``pacs`` and its actions to the sub-command parsers `sub`."""
    pacs = sub.add_parser("pacs", help="query, retrieve and send: a PACS over DIMSE or DICOMweb")
    actions = pacs.add_subparsers(dest="action", required=True, parser_class=type(pacs))
    echo = actions.add_parser("echo", help="C-ECHO a node: is it there, does it accept us?")
    _common(echo)
    find = actions.add_parser("find", help="C-FIND patients, studies or series")
    _common(find)
    find.add_argument("--level", choices=FIND_LEVELS, default="study")
    find.add_argument("--patient", default="", help="patient name (wildcards * and ?)")
    find.add_argument("--patient-id", default="")
    find.add_argument("--accession", default="")
    find.add_argument("--date", default="", help="YYYYMMDD or a YYYYMMDD-YYYYMMDD range")
    find.add_argument("--modality", default="")
    find.add_argument("--description", default="")
    find.add_argument("--study", default="", help="Study Instance UID (series level needs it)")
    find.add_argument("--limit", type=int, default=1000,
                      help="list at most this many matches (1000); more is an error that "
                      "still prints the first ones")
    find.add_argument("--json", action="store_true", help="print one JSON array")
    get = actions.add_parser("get", help="C-GET (DIMSE) or WADO-RS (DICOMweb) a study or "
                             "series into the study database")
    _retrieve_arguments(get)
    move = actions.add_parser("move", help="C-MOVE a study or series to medviewer's own "
                              "storage SCP, into the study database")
    _retrieve_arguments(move)
    move.add_argument("--dest-port", type=int, required=True,
                      help="the port medviewer listens on (the PACS must know --aet there)")
    listen = actions.add_parser("listen", help="a storage SCP: modalities and PACS push "
                                "studies here, into the study database (until Ctrl-C)")
    listen.add_argument("--port", type=int, required=True)
    listen.add_argument("--aet", default="", help="medviewer's own AE title (MEDVIEWER)")
    listen.add_argument("--db", help="study database file (default: the user's)")
    listen.add_argument("--dest", help="where the files are kept (default: the user's data "
                        "folder, pacs/)")
    listen.add_argument("--tls-cert", default="", help="listen over TLS with this certificate "
                        "(PEM; with --tls-key)")
    listen.add_argument("--tls-key", default="", help="its private key")
    listen.add_argument("--tls-ca", default="", help="accept only clients whose certificate "
                        "these CAs signed (PEM)")
    send = actions.add_parser("send", help="C-STORE DICOM files (or every file in folders)")
    _common(send)
    send.add_argument("paths", nargs="+", help="DICOM files or folders")
    send.add_argument("--json", action="store_true", help="print what was stored and failed")
    nodes = actions.add_parser("nodes", help="list the configured nodes (pacs-nodes.json)")
    nodes.add_argument("--json", action="store_true")
    secret = actions.add_parser("secret", help="keep the password or token of a configured "
                                "DICOMweb node (OS keyring; read from stdin when not a terminal)")
    secret.add_argument("name", help="the configured node's name")
    secret.add_argument("--forget", action="store_true", help="remove it instead")


def _retrieve_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("uid", help="a Study or Series Instance UID")
    parser.add_argument("--db", help="study database file (default: the user's)")
    parser.add_argument("--dest", help="where the files are kept (default: the user's data "
                        "folder, pacs/)")
    parser.add_argument("--json", action="store_true", help="print the counts and series ids")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", help="configured name, AET@HOST:PORT or http(s):// URL")
    parser.add_argument("--aet", default="", help="medviewer's own AE title (MEDVIEWER)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    parser.add_argument("--tls", action="store_true", help="DIMSE over TLS")
    parser.add_argument("--tls-ca", default="", help="CA certificates to trust (PEM; with --tls)")
    parser.add_argument("--tls-cert", default="", help="our client certificate (with --tls)")
    parser.add_argument("--tls-key", default="", help="its private key (with --tls)")
    parser.add_argument("--auth", choices=("basic", "bearer"), default="",
                        help="DICOMweb authentication for a URL node (the secret: "
                        "MEDVIEWER_PACS_SECRET, else asked for on a terminal)")
    parser.add_argument("--user", default="", help="the HTTP basic user name (with --auth basic)")


def cmd_pacs(args: argparse.Namespace) -> int:
    """Run ``medviewer pacs ACTION``; :class:`NetworkError` reaches the caller."""
    from medviewer.net.nodes import (
        DEFAULT_AE_TITLE,
        dicomweb_node,
        dimse_node,
        load_nodes,
        parse_node,
    )

    if args.action == "listen":
        return _listen(args, args.aet or DEFAULT_AE_TITLE)
    if args.action in ("nodes", "secret"):
        return _nodes(args) if args.action == "nodes" else _secret(args)
    node = parse_node(args.node, load_nodes())
    if args.tls and node.kind == "dimse":
        node = dimse_node(node.ae_title, node.host, node.port, node.name, tls=True,
                          ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)
    if args.auth and node.kind == "dicomweb":
        node = dicomweb_node(node.url, node.name, auth=args.auth, username=args.user,
                             ca_file=node.ca_file)
    _ask_secret(node)
    if node.kind != "dimse" and args.action == "move":
        raise NetworkError(f"{node.describe()} is a DICOMweb node: use `pacs get` (WADO-RS)")
    aet = args.aet or DEFAULT_AE_TITLE
    action = {"echo": _echo, "find": _find, "get": _get, "move": _get,
              "send": _send}[args.action]
    return action(args, node, aet)


def _ask_secret(node: Any) -> None:
    """On a terminal, ask for the password or token of a DICOMweb node that has none kept (it
    is used for this command only)."""
    from medviewer.net.secrets import secret_for, use_for_session

    if not node.auth or secret_for(node.name) or not sys.stdin.isatty():
        return
    import getpass

    what = "password" if node.auth == "basic" else "token"
    use_for_session(node.name, getpass.getpass(f"{what} for {node.describe()}: "))


def _nodes(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from medviewer.net.nodes import load_nodes, nodes_path

    nodes = load_nodes()
    if args.json:
        print(json.dumps([asdict(n) for n in nodes.values()], indent=2))
        return 0
    for node in nodes.values():
        auth = f"  ({node.auth} authentication)" if node.auth else ""
        print(f"{node.name}: {node.describe()}{auth}")
    print(f"{len(nodes)} node(s) in {nodes_path()}", file=sys.stderr)
    return 0


def _secret(args: argparse.Namespace) -> int:
    from medviewer.net.nodes import load_nodes
    from medviewer.net.secrets import store_secret

    node = load_nodes().get(args.name)
    if node is None or not node.auth:
        raise NetworkError(f"{args.name!r} is not a configured DICOMweb node with "
                           "authentication (see `medviewer pacs nodes`)")
    if args.forget:
        secret = ""
    elif sys.stdin.isatty():
        import getpass

        secret = getpass.getpass(f"{'password' if node.auth == 'basic' else 'token'} for "
                                 f"{node.describe()}: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret and not args.forget:
        raise NetworkError("no secret given (nothing was changed)")
    where = store_secret(node.name, secret)
    print(f"{'forgotten' if args.forget else 'kept'}: {args.name} in {where}")
    return 0


def _echo(args: argparse.Namespace, node: Any, aet: str) -> int:
    if node.kind == "dicomweb":
        from medviewer.net.web import probe

        seconds = probe(node, timeout=args.timeout)
        print(f"{node.describe()}: QIDO-RS answered in {seconds * 1000:.0f} ms")
        return 0
    from medviewer.net.dimse import echo

    seconds = echo(node, calling_aet=aet, timeout=args.timeout)
    print(f"{node.describe()}: C-ECHO answered in {seconds * 1000:.0f} ms (as {aet})")
    return 0


def _find(args: argparse.Namespace, node: Any, aet: str) -> int:
    from medviewer.net.dimse import Query, TooManyMatches, find

    if args.level == "series" and not args.study:
        raise NetworkError("a series query needs --study STUDY_UID (the study root's rule)")
    query = Query(args.level.upper(), patient_name=args.patient, patient_id=args.patient_id,
                  accession_number=args.accession, date=args.date, modality=args.modality,
                  description=args.description, study_uid=args.study)
    if args.limit < 1:
        raise NetworkError(f"--limit must be at least 1, not {args.limit}")
    rows: list[dict[str, str]] = []
    if node.kind == "dicomweb":
        from medviewer.net.web import search

        found: Any = search(node, query, timeout=args.timeout, limit=args.limit)
    else:
        found = find(node, query, calling_aet=aet, timeout=args.timeout, limit=args.limit)
    too_many = None
    try:
        for row in found:
            rows.append(row)
            if not args.json:
                print("  ".join(f"{k}={v}" for k, v in row.items() if v), flush=True)
    except TooManyMatches as exc:
        too_many = exc
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{len(rows)} {args.level} match(es) on {node.describe()}", file=sys.stderr)
    if too_many is not None:
        print(f"medviewer pacs find: {too_many} (or raise --limit)", file=sys.stderr)
        return 1
    return 0


def _get(args: argparse.Namespace, node: Any, aet: str) -> int:
    from medviewer.io.database import StudyDatabase
    from medviewer.net.retrieve import retrieve

    db = StudyDatabase(args.db)
    steps = retrieve(db, node, args.uid, dest=Path(args.dest) if args.dest else None,
                     calling_aet=aet, timeout=args.timeout,
                     move_port=args.dest_port if args.action == "move" else None)
    try:
        while True:
            progress = next(steps)
            if not args.json:
                print(f"\rreceived {progress.received}/{progress.total}", end="",
                      file=sys.stderr, flush=True)
    except StopIteration as stop:
        report = stop.value
    if not args.json:
        print(file=sys.stderr)
    summary = {"received": report.received, "skipped": report.skipped,
               "failed": report.failed, "series": report.series,
               "seconds": round(report.seconds, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{report.received} received, {report.skipped} already here, "
              f"{len(report.failed)} failed; series ids {report.series} "
              f"({report.seconds:.1f} s)")
    return 0 if report.complete else 1


def _send(args: argparse.Namespace, node: Any, aet: str) -> int:
    from medviewer.net.send import send

    paths: list[Path] = []
    for text in args.paths:
        path = Path(text)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            paths.append(path)
        else:
            raise NetworkError(f"no such file or folder: {text}")
    if node.kind == "dicomweb":
        from medviewer.net.web import store

        stored = store(node, paths, timeout=args.timeout)
        print(json.dumps({"stored": [str(p) for p in stored], "failed": []}, indent=2)
              if args.json else f"{len(stored)} stored on {node.describe()} (STOW-RS)")
        return 0
    steps = send(node, paths, calling_aet=aet, timeout=args.timeout)
    try:
        while True:
            progress = next(steps)
            if not args.json:
                print(f"\rsent {progress.sent}/{progress.total}", end="", file=sys.stderr,
                      flush=True)
    except StopIteration as stop:
        report = stop.value
    if args.json:
        print(json.dumps({"stored": [str(p) for p in report.stored],
                          "failed": [{"path": str(p), "reason": why} for p, why in report.failed],
                          "seconds": round(report.seconds, 2)}, indent=2))
    else:
        print(file=sys.stderr)
        for path, why in report.failed:
            print(f"{path}: {why}", file=sys.stderr)
        print(f"{len(report.stored)} stored on {node.describe()}, {len(report.failed)} failed "
              f"({report.seconds:.1f} s)")
    return 0 if report.complete else 1


def _listen(args: argparse.Namespace, aet: str) -> int:
    import time

    from medviewer.io.database import StudyDatabase
    from medviewer.net.retrieve import default_store
    from medviewer.net.scp import ServerTls, StorageServer

    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_ca and not args.tls_cert):
        raise NetworkError("listening over TLS needs --tls-cert and --tls-key (and --tls-ca "
                           "only with them)")
    tls = ServerTls(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    db = StudyDatabase(args.db)
    dest = Path(args.dest) if args.dest else default_store()
    received = 0
    with StorageServer(dest, args.port, ae_title=aet, tls=tls) as server:
        print(f"listening as {aet} on port {args.port}{' over TLS' if tls else ''}; files "
              f"into {dest} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(0.5)
                received += _index_new(db, server.receiver.take_new())
        except KeyboardInterrupt:
            pass
    received += _index_new(db, server.receiver.take_new())  # the server has stopped
    print(f"{received} instances received and indexed", flush=True)
    return 0


def _index_new(db: Any, paths: list[Path]) -> int:
    if paths:
        db.import_paths(paths)
        print(f"{len(paths)} instances received", flush=True)
    return len(paths)
