"""Command line of the bank simulators: `python -m banksim serve|seed`.

`serve --json` prints one line `{"HBB": "http://host:port", ...}` once every bank answers, then
runs until SIGINT/SIGTERM. `seed` creates and seeds the books without serving (idempotent; every
start of `serve` seeds too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from banksim.core.bank import SimConfig
from banksim.core.logs import configure_logging
from banksim.world import World


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    config = SimConfig.from_env(Path(args.data_dir))
    if args.command == "seed":
        world = World(config)
        world.close()
        print(f"seeded {', '.join(world.contexts)} under {config.banks_dir}")
        return 0
    asyncio.run(_serve(config, args.host, args.base_port, as_json=args.json))
    return 0


async def _serve(config: SimConfig, host: str, base_port: int, *, as_json: bool) -> None:
    world = World(config)

    async def announce(urls: dict[str, str]) -> None:
        if as_json:
            print(json.dumps(urls), flush=True)
        else:
            for code, url in urls.items():
                print(f"{code}  {url}   (SMS outbox: {url}/sms)", flush=True)

    try:
        await world.serve(host, base_port, announce)
    finally:
        world.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m banksim", description="Tianpay's simulated banks")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run every bank, each on its own port")
    serve.add_argument("--data-dir", default="./tianpay-data")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--base-port", type=int, default=8001, help="HBB's port; JHB +1, BCB +2; 0 = ephemeral")
    serve.add_argument("--json", action="store_true", help="print the banks' URLs as one JSON line")
    seed = sub.add_parser("seed", help="create and seed every bank's books, then exit")
    seed.add_argument("--data-dir", default="./tianpay-data")
    return parser


if __name__ == "__main__":
    sys.exit(main())
