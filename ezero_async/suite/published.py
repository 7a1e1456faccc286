"""Published per-game Atari 100k scores to print beside a suite's own (raw game scores).

Each entry names its source; a test recomputes each table's aggregate (a typo in any game would
move it): against the paper's stated aggregate where a stored source states one (EZ-V1), against
the value computed when the table was transcribed otherwise. The EZ-V2 and BBF tables were read
from a line-by-line text extraction of the papers' PDFs (katrinalaszlo/method-scanner-research at
4c5d282, outcome_predictor/phase26/sources/{2403.00564,2305.19452}.json); in those same lines the
EfficientZero column equals Ye et al.'s Table 3 below and the BBF column of EZ-V2's Table 1 equals
BBF's own Table A.1, game by game, which pins down the columns.
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

EFFICIENTZERO_V2 = {
    # Wang et al. 2024, "EfficientZero V2: Mastering Discrete and Continuous Control with Limited
    # Data", ICML 2024, Table 1 (last column). Seeds, episodes and checkpoint choice for Atari are
    # not stated there. Mean HNS of this table 2.680, median 1.235 (computed here).
    "Alien": 1557.7, "Amidar": 184.9, "Assault": 1757.5, "Asterix": 61810.0, "BankHeist": 1316.7,
    "BattleZone": 14433.3, "Boxing": 75.0, "Breakout": 400.1, "ChopperCommand": 1196.6, "CrazyClimber": 112363.3,
    "DemonAttack": 22773.5, "Freeway": 0.0, "Frostbite": 1136.3, "Gopher": 3868.7, "Hero": 9705.0,
    "Jamesbond": 468.3, "Kangaroo": 1886.7, "Krull": 9080.0, "KungFuMaster": 28883.3, "MsPacman": 2251.0,
    "Pong": 20.8, "PrivateEye": 99.8, "Qbert": 16058.3, "RoadRunner": 27516.7, "Seaquest": 1974.0,
    "UpNDown": 15224.3,
}

BBF = {
    # Schwarzer et al. 2023, "Bigger, Better, Faster: Human-level Atari with Human-level
    # Efficiency", ICML 2023, Table A.1 (replay ratio 8; 50 seeds per game, scores at the end of
    # training, no sticky actions). Mean HNS of this table 2.247, median 0.917 (computed here).
    "Alien": 1173.2, "Amidar": 244.6, "Assault": 2098.5, "Asterix": 3946.1, "BankHeist": 732.9,
    "BattleZone": 24459.8, "Boxing": 85.8, "Breakout": 370.6, "ChopperCommand": 7549.3, "CrazyClimber": 58431.8,
    "DemonAttack": 13341.4, "Freeway": 25.5, "Frostbite": 2384.8, "Gopher": 1331.2, "Hero": 7818.6,
    "Jamesbond": 1129.6, "Kangaroo": 6614.7, "Krull": 8223.4, "KungFuMaster": 18991.7, "MsPacman": 2008.3,
    "Pong": 16.7, "PrivateEye": 40.5, "Qbert": 4447.1, "RoadRunner": 33426.8, "Seaquest": 1232.5,
    "UpNDown": 12101.7,
}

PUBLISHED: dict[str, dict[str, float]] = {
    "EZ-V1 (paper)": EFFICIENTZERO, "EZ-V2 (paper)": EFFICIENTZERO_V2, "BBF (paper)": BBF,
}
"""Column name -> per-game raw score."""
