"""Synthetic audio-visual dataset: instruments that move with their own sound, with known truth.

``generate_dataset(out, ...)`` writes solos (``OUT/solos/<category>/<id>.mp4``) and duets
(``OUT/duets/<id>.mp4``), each with ``<stem>.truth.json`` (per-frame boxes, sounding flags and
onsets of every source) and clean per-source audio ``<stem>.source-<k>.wav`` beside it.
See :mod:`avsplit.synth.dataset` for the layout.
"""

from avsplit.synth.dataset import TRUTH_VERSION, SynthSummary, generate_dataset
from avsplit.synth.instruments import CATEGORIES, DISTRACTORS, Category, category_names

__all__ = ["generate_dataset", "SynthSummary", "TRUTH_VERSION", "CATEGORIES", "DISTRACTORS", "Category", "category_names"]
