"""Synthetic audio-visual dataset: instruments that move with their own sound, with known truth.

``generate_dataset(out, ...)`` writes solos (``OUT/solos/<category>/<id>.mp4``) and duets
(``OUT/duets/<id>.mp4``), each with ``<stem>.truth.json`` (per-frame boxes, sounding flags and
onsets of every source) and clean per-source audio ``<stem>.source-<k>.wav`` beside it.
See :mod:`avsplit.synth.dataset` for the layout and :mod:`avsplit.synth.truth` for the truth files.
"""

from avsplit.synth.dataset import SynthSummary, generate_dataset
from avsplit.synth.instruments import CATEGORIES, DISTRACTORS, Category, category_names
from avsplit.synth.truth import TRUTH_VERSION

__all__ = ["generate_dataset", "SynthSummary", "TRUTH_VERSION", "CATEGORIES", "DISTRACTORS", "Category", "category_names"]
