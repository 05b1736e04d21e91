"""placeholder"""
from dataclasses import dataclass
@dataclass
class Verdict:
    ok: bool = False
def prove(*a, **k):
    return None
