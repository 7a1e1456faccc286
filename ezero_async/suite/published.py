"""Published per-game Atari 100k scores to print beside a suite's own (raw game scores).

Each entry names its source; a test recomputes the paper's own aggregate from the table (a typo
in any game would move it). Papers whose per-game tables are not yet transcribed here (EfficientZero
V2, BBF) are missing rather than approximated.
"""
from __future__ import annotations

EFFICIENTZERO = {
    # Ye et al. 2021, "Mastering Atari Games with Limited Data", NeurIPS 2021, Table 3
    # (EfficientZero, 100k env steps, mean over 3 runs x 32 evaluation episodes).
    # Aggregates as published: mean HNS 1.943, median 1.090.
    "Alien": 808.5, "Amidar": 148.6, "Assault": 1263.1, "Asterix": 25557.8, "BankHeist": 351.0,
    "BattleZone": 13871.2, "Boxing": 52.7, "Breakout": 414.1, "ChopperCommand": 1117.3, "CrazyClimber": 83940.2,
    "DemonAttack": 13003.9, "Freeway": 21.8, "Frostbite": 296.3, "Gopher": 3260.3, "Hero": 9315.9,
    "Jamesbond": 517.0, "Kangaroo": 724.1, "Krull": 5663.3, "KungFuMaster": 30944.8, "MsPacman": 1281.2,
    "Pong": 20.1, "PrivateEye": 96.7, "Qbert": 13781.9, "RoadRunner": 17751.3, "Seaquest": 1100.2,
    "UpNDown": 17264.2,
}

PUBLISHED: dict[str, dict[str, float]] = {"EZ-V1 (paper)": EFFICIENTZERO}
"""Column name -> per-game raw score."""
