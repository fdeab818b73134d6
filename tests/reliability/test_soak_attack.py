"""`bench/soak.py --attack` on the demo bundle with its encoders, briefly: the attack mix of the hardening
review runs against a real server and every attack is refused (4xx, or 503 with Retry-After), apart from
the two that are valid requests (3e38 vectors, long-text bursts)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from encoder_bundle import EncoderBundles

pytestmark = [pytest.mark.slow, pytest.mark.encoders]
SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
VALID = {"huge-values", "long-texts"}  # requests within every limit: 200 is right
CLOSABLE = {"huge-headers"}  # refused with 431 and a close, which a reset can overtake (as in test_attacks)


def test_soak_beside_the_attack_mix_refuses_every_attack(encoder_bundles: EncoderBundles) -> None:
    run = subprocess.run(
        [sys.executable, str(SOAK), "--bundle", str(encoder_bundles.with_encoders), "--seconds", "10", "--attack",
         "--no-reload", "--concurrency", "4", "--attackers", "3", "--slow-sockets", "10", "--warm-up", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (line,) = [x for x in run.stdout.splitlines() if x.startswith("attack answers: ")]
    answers = re.findall(r"([a-z0-9-]+(?:-as-[a-z]+)?) (\w+): (\d+)", line.removeprefix("attack answers: "))
    kinds = {kind for kind, _, _ in answers}
    assert len(kinds) >= 6, line  # the mix reaches many kinds even in a short run
    for kind, status, _ in answers:
        if kind in VALID:
            assert status in ("200", "503"), (kind, status)
        elif kind in CLOSABLE and status == "closed":
            continue
        else:
            assert status.isdigit() and (400 <= int(status) < 500 or status == "503"), (kind, status)
