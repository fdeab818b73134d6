"""Request examples that work on the demo bundle as pasted into /docs "Try it out".

``BARK`` is a real embedding from ``data/demo/audio.parquet`` (item ``audio:effect:animals/mammals/dogs/dog``, a
recorded dog bark; Whisper tiny.en, 384-d) as base64 little-endian float32; a test checks it still is.
"""

from __future__ import annotations

from typing import Any

BARK_ID = "audio:effect:animals/mammals/dogs/dog"
FIRE_ENGINE_ID = "text:vehicles/emergency/cartoon/fire_engine"
BARK = (
    "AMA4PQDAPD4AQF2/AIBVvgAgK7wAYJa+AOAEvwBgGb8AwE++AGBTPwAA/b4AwJQ9ACC8vgBAeT4AwPi+AKDcPgAgSL8AYPS+AIAH"
    "PgCAV0AAwBY/AIAHvgBAxj4AYAu/AODAPQBAaj8AQCS+AAASvwCAHz4AANG+AICYPgBgJTsAgKa/AKDlvgCAJT8A4Ag/AEAGvwCA"
    "Pr8AYAY/AMAGPgBgEb4AQPy9AOC0vgCghb4A4PO+AIDgPQBAmj0AoMI+AODdPQDg870AwPu+AICyPgBAZD8AYC2+AIAZPQBAOr8A"
    "YG2/AGAevgDAij4AgFw+ACDVPQCAfz0A4OU/AOCHPgCAdb0AIII+AIBPvgCAxT8AYBU/AGD6PgBAlr4AIA4+AKD0vgCgEj4AoC29"
    "AEDavgCAvr4AoP89AEAIvgAAR74AYHq+AGBgPQCAYz4AoPI+AGBNvwBgBj8AoEm+ACAbPwCg5T4AwBm/AOCivgCgaj4AYJY+AMC+"
    "vgBgAz0AAHs+AIDBvgAgHr8A4A4/AECVvABAlL4AoAm/AICHPgAg2z8AAM8+AOCivgCABz8AoKk+AADIPgAA7j0AwIi+ACAsPwBA"
    "Oj4A4LC+AKBuvwBghz0AwI+/AOCvPQAgv7wA4Py+AKDJPQDApz8AwEA+AIAsvgAgGLsAYMC9AEDwvgBgJz8AoNg9AICwvQCg670A"
    "IFQ/AKAbvgCgST4AAEo/AICfvgDgS78AAAO/AICDvQCgCL8AQG4/AMD6PABgb0AAwBO/AODNPgDAhD4AYP++AOA/vwBA/r4AYFU/"
    "AKBVPgDgU78AIKa+AODdPgBAI74AQII8ACDIPACgpD4A4Ny+AIA4vQAgjT0AYG6+AIABPwBgw78AgLc+AAD0PgAgzL4AgMm+AABS"
    "PQCAiL4AIIe/AODYPQDgQL4AADg/AMBlvgBA7j4AYLe+AIAfvwCAaL8AAPE9AKAivgBgG78AAFa9AKB8vwBA5T0AQJq+AOA5PgCg"
    "hL4AoCw/AAByvgDgBj4AQHk9AGBvvwAA7D8AQCk/AECuPgCgQz8AAH2/ACCxPQCAFD4AQLQ+AICrvQBgQL4AQOq/AEDbPQCgYL8A"
    "wBE/AIBkPQCgwD4AQKQ+AMBAPQDgkb8AwCa+AMCLvgAgbr4AoC6/AKAuwACgkr8A4Ja+AOBSvgAAq74AoJe+AKCNvwDAgDwAQHg/"
    "AADfPgBg2L4AoKA+AACOPgDg+r0AwBm9AKC7PgCAeL8AoNs9AKCcvgDACr4AIDa9AICCPgCg9z4AIGg+AKDvvgAgdb4A4C6/AAAl"
    "vgAgFL8A4GO9AMALvgCAVj8AwNO9AAD5vwDAVz4AgPI9AAAXPgCAYr4AAA8/AOCbvgDgfT4AIIK/AMCNvgBA9r0AoD+/AIBOvgAg"
    "670AQB6/AOBhvACARL8AQHa9AMDFPADg/D0AQL8+AEDMvgBgbD4AABq+AKDhvwDgnb4A4B+/ACARPgAgHT4AgGy/AGCsvQDAEUAA"
    "YE2+AGANPgAAyj0AwN2+AEAXPQBA+r4AoCa/AICHvQCAlz4A4OE+AACNvgAAHT4AgN49AEBPQABAr0AAoGY/AEBdvgDAmjwAQPQ9"
    "AMAgvgBAEL8AgH0+AICHvwAAH7sAgEY9AKAcPwAADr4AwPs+AEAKPgAgmD4AQIA/AADqvQDgAzsAAB+/AMDRPQAgsT4AoNK9AECB"
    "PgCAkbsAwBy+AGAZvwCA8zwA4Cu+AAD2vAAAOb8AgCU+AODLvADgDD8AQLq+AAABvwDAET8AoH4+AOCPPgCA4kAAQKQ+AACJPgCA"
    "dD4AoCe+AMC3vgAAOz4AoEw+AMCqPwAAQ74AYL4+ACB+vgBAbb4AYKK9AIDpvgCggz0AoHk+AECPvgCAtz4AwMG+AECOQADgib8A"
    "IKu9AOBVPgAAlr8AoL6+AKAhPwDgt70AYGM+AGBYPgCgt74AwJm+AADzvQCAd74AYKY+AADevgBgYb4AACW+AMAGPwCgpr4AoIo+"
    "AIAfPgBATbwAYNO9AMBmvwCgI78AQJ6+AMBtwAAAKj8AQCm/"
)

TRANSLATE: dict[str, dict[str, Any]] = {
    "bark-to-image": {
        "summary": "A dog's bark into the image space, with its round-trip confidence",
        "value": {"from": "audio", "to": "image", "vector": BARK, "encoding": "base64", "confidence": True},
    },
    "pinned-path": {
        "summary": "The same along a pinned path",
        "value": {"from": "audio", "to": "image", "vector": BARK, "encoding": "base64",
                  "path": ["audio", "text", "image"]},
    },
}
RETRIEVE: dict[str, dict[str, Any]] = {
    "captions-for-a-bark": {
        "summary": "Captions for a dog's bark",
        "value": {"from": "audio", "to": "text", "vector": BARK, "encoding": "base64", "k": 5},
    },
    "images-for-a-bark": {
        "summary": "Images for a dog's bark (routed through text)",
        "value": {"from": "audio", "to": "image", "vector": BARK, "encoding": "base64", "k": 5},
    },
}


def param(value: object) -> dict[str, dict[str, Any]]:
    """A query parameter's example for /docs, valid on the demo bundle."""
    return {"demo": {"summary": "on the demo bundle", "value": value}}
