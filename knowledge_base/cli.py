"""Knowledge-base maintenance commands (services environment).

    python -m knowledge_base.cli ensure-index   # build if missing/outdated, else apply the database's changes (set-up)
    python -m knowledge_base.cli rebuild        # disaster recovery: re-embed every published entry, swap atomically
    python -m knowledge_base.cli ask "居住证怎么办理"   # answer as the bot would (declines are not logged)
    python -m knowledge_base.cli status         # index folder, snapshot, entries, rows
"""
from __future__ import annotations

import argparse
import json
import sys

from core.config import get_settings
from core.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m knowledge_base.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ensure-index", help="build the index if missing or different from the database")
    sub.add_parser("rebuild", help="re-embed every published entry into a fresh index")
    ask = sub.add_parser("ask", help="answer one question")
    ask.add_argument("question")
    sub.add_parser("status", help="describe the persisted index")
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging("WARNING", json_lines=False)
    from knowledge_base.service import KnowledgeBase

    kb = KnowledgeBase()
    if args.command == "ensure-index":
        result = kb.ensure_index()
        print(f"      knowledge-base index {result['action']}: {result.get('entries')} entries "
              f"({settings.resolved_kb_index_dir})", flush=True)
    elif args.command == "rebuild":
        result = kb.rebuild()
        print(json.dumps(result, ensure_ascii=False))
    elif args.command == "ask":
        print(json.dumps(kb.answer(args.question, log_unanswered=False).to_dict(), ensure_ascii=False, indent=2))
    elif args.command == "status":
        from knowledge_base.index import KBIndex, read_current

        state = read_current(settings.resolved_kb_index_dir)
        if state is None:
            print(json.dumps({"index_dir": str(settings.resolved_kb_index_dir), "exists": False}))
            return 1
        index = KBIndex.load(settings.resolved_kb_index_dir)
        print(json.dumps({"index_dir": str(settings.resolved_kb_index_dir), "snapshot": list(state),
                          "entries": len(index), "rows": index.live_rows, "dense": index.kind,
                          "tombstones": len(index.dead_rows), "meta": index.meta}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
