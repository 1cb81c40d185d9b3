"""Deterministic evaluation (``avsplit evaluate``).

Two protocols, both scored with BSS Eval v3 (:mod:`avsplit.evaluation.bss`):

- **mix**: mixtures of N solo videos drawn deterministically from the data with ``seed``; each
  solo's clip is the reference, the model separates the sum using each solo's own frames. The
  same table holds baselines at the model's STFT: the unseparated mixture (lower bound) and the
  oracle ideal binary and ratio masks (upper bounds for any mask-based method).
- **wild**: videos with several sources and ground truth beside them (``<stem>.truth.json`` and
  ``<stem>.source-<k>.wav``, as ``avsplit synth`` writes for duets) are separated as
  ``avsplit separate`` does, choosing the number of sources itself (``count="truth"``: as many as
  the truth has), and compared with the clean tracks (both ordered left to right). A video split
  into fewer tracks than it has sources is unseparated: every source is scored against the
  mixture; one split into more has each track added to the source it correlates with best.
  Scored at the model's rate (the paper's protocol, method ``model``) and, as ``model_fullband``,
  as ``separate`` writes them by default: full band at the truth's own rate (mono mixdowns of the
  tracks and of the truth).

Source count (:mod:`avsplit.evaluation.breakdown`): the share of wild videos split into the right number of
tracks, per kind, and of the mixed solos that have a truth file left as one track (``count/solo``).
Every protocol group is also broken down per domain (the truth's ``domain``; in-domain vs
out-of-domain by its ``split``).

Localization (where the truth has per-frame boxes, as ``synth`` writes them): the wild videos are
also localized by both ``localize`` methods (``model`` and ``onsets``) and scored per frame by
cIoU against the boxes of the sources sounding in that frame (:mod:`avsplit.evaluation.localization`):
mean cIoU, share of frames with cIoU >= 0.5 and AUC, in the same table, JSON, CSV and Markdown.

Modules: :mod:`.protocol` (both protocols over a data folder), :mod:`.mix`, :mod:`.wild`,
:mod:`.scores`, :mod:`.bss` and :mod:`.localization` (the metrics), :mod:`.breakdown`,
:mod:`.outputs` and :mod:`.report` (HTML).
"""

from avsplit.evaluation.outputs import localization_rows, print_table, write_outputs
from avsplit.evaluation.protocol import evaluate
from avsplit.evaluation.scores import LOC_METHODS, LOC_METRICS, METHODS, METRICS, EvalItem, summarize

__all__ = ["LOC_METHODS", "LOC_METRICS", "METHODS", "METRICS", "EvalItem", "evaluate", "localization_rows",
           "print_table", "summarize", "write_outputs"]
