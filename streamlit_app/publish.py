"""`python -m streamlit_app.publish`: hand Spindle files or records through RabbitMQ, the way a producer would.

    python -m streamlit_app.publish files --kind audio --job-id calls-2026-11 data/inbox/*.wav
    python -m streamlit_app.publish records --job-id crm-export people.csv

Files must be under the data folder (SPINDLE_DATA_DIR) or be given as storage keys;
--copy first copies other files into <data>/intake/<job id>/. Each row of a sheet
(CSV or Excel) becomes one record message. Message ids are derived from the job id
and the file or row, so publishing the same batch twice is harmless: the intake
stores each message once. Messages are persistent and confirmed by the broker.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings, load_settings
from streamlit_app.validation.records import read_sheet

FILE_KINDS = ("audio", "image", "text")


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    body: dict


def message_id(job_id: str, kind: str, what: str) -> str:
    """Stable id: the same job, kind and file (or row) is the same message."""
    return hashlib.sha256(f"{job_id}\0{kind}\0{what}".encode()).hexdigest()[:32]


def file_messages(job_id: str, kind: str, files: Sequence[str], data_dir: Path, copy: bool = False,
                  metadata: dict | None = None) -> list[OutgoingMessage]:
    """One message per file; paths are sent relative to the data folder."""
    if kind not in FILE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FILE_KINDS)}, not {kind!r}")
    root = data_dir.resolve()
    out = []
    for given in files:
        path = Path(given)
        if not path.exists():  # a storage key (a stored file's id) goes as it is
            out.append(OutgoingMessage(message_id(job_id, kind, given),
                                       {"job_id": job_id, "kind": kind, "file": given, "metadata": metadata or {}}))
            continue
        full = path.resolve()
        if not full.is_relative_to(root):
            if not copy:
                raise ValueError(f"{given} is outside the data folder {root}; use --copy to copy it there first")
            target = root / "intake" / hashlib.sha256(job_id.encode()).hexdigest()[:12] / full.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(full, target)
            full = target
        relative = full.relative_to(root).as_posix()
        out.append(OutgoingMessage(message_id(job_id, kind, relative),
                                   {"job_id": job_id, "kind": kind, "file": relative,
                                    "metadata": {**(metadata or {}), "name": full.name}}))
    return out


def record_messages(job_id: str, records: Iterable[dict], source: str = "") -> list[OutgoingMessage]:
    """One message per record; its sheet row number (header = row 1) goes in the metadata."""
    out = []
    for position, record in enumerate(records):
        row = position + 2
        out.append(OutgoingMessage(message_id(job_id, "record", f"{source}:{row}"),
                                   {"job_id": job_id, "kind": "record", "record": record,
                                    "metadata": {"row": row, "source": source}}))
    return out


def sheet_records(path: Path) -> list[dict]:
    """The rows of a CSV or Excel sheet as {column: text}, read with the Validation page's limits."""
    frame = read_sheet(path.read_bytes(), path.name)
    return [{str(k): ("" if v is None else str(v)) for k, v in row.items()} for row in frame.to_dict("records")]


def publish(url: str, queue: str, messages: Sequence[OutgoingMessage]) -> int:
    """Publish persistent messages with broker confirms; returns how many were confirmed."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for message in messages:
            properties = pika.BasicProperties(message_id=message.message_id, delivery_mode=2,
                                              content_type="application/json")
            channel.basic_publish("", queue, json.dumps(message.body).encode(), properties=properties)
        return len(messages)
    finally:
        connection.close()


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    settings = settings or load_settings()
    parser = argparse.ArgumentParser(prog="python -m streamlit_app.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=settings.rabbitmq_url, help="broker URL (default: RABBITMQ_URL)")
    parser.add_argument("--queue", default=settings.voice_processing_queue,
                        help="queue name (default: VOICE_PROCESSING_QUEUE)")
    parser.add_argument("--job-id", required=True, help="the job these messages belong to (one job per id)")
    commands = parser.add_subparsers(dest="command", required=True)
    files = commands.add_parser("files", help="publish audio, image or text files")
    files.add_argument("--kind", required=True, choices=FILE_KINDS)
    files.add_argument("--copy", action="store_true", help="copy files from outside the data folder into it")
    files.add_argument("paths", nargs="+", help="files under the data folder, or storage keys")
    records = commands.add_parser("records", help="publish each row of a CSV or Excel sheet as a record")
    records.add_argument("sheet", help="a .csv or .xlsx file")
    args = parser.parse_args(argv)
    if not args.url:
        print("No broker: set RABBITMQ_URL or pass --url.", file=sys.stderr)
        return 2
    try:
        if args.command == "files":
            messages = file_messages(args.job_id, args.kind, args.paths, settings.data_dir, copy=args.copy)
        else:
            sheet = Path(args.sheet)
            messages = record_messages(args.job_id, sheet_records(sheet), source=sheet.name)
        count = publish(args.url, args.queue, messages)
    except Exception as exc:  # noqa: BLE001 - a command-line tool says what went wrong, without a traceback
        print(f"Not published: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"Published {count} message(s) to {args.queue} for job {args.job_id}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
