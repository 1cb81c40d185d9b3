"""What a full-variety run can use here: SoundFonts FluidSynth loads, the real-recording samples,
the glyph fonts. Missing pieces are warned about once and left out (what exists is used).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from avsplit.errors import ConfigError
from avsplit.synth.audio import (_FLUID_DRUM_CHANNEL, _load_fluidsynth, _load_soundfont, _new_synth,
                                 fluidsynth_problem, quiet_fluidsynth_log)
from avsplit.synth.instruments import CATEGORIES
from avsplit.synth.makers import SoundFont, find_soundfonts
from avsplit.synth.patches import find_patch_set
from avsplit.synth.realtakes import HELD_OUT_REAL_FILES, find_sample_dir
from avsplit.synth.variety import BACKGROUNDS, GLYPH_STYLES, GLYPHS, HELD_OUT, MAKER_KINDS, MOTIONS, Resources

__all__ = ["resolve_resources", "loadable_soundfonts"]


#: A SoundFont must have presets for at least this share of the categories to count as General MIDI;
#: others (a drum kit, one instrument) put unrelated sounds at the General MIDI numbers (a drum kit
#: at bank 0, program 0, where a piano belongs) and are left out.
MIN_GM_SHARE = 0.5


def loadable_soundfonts(fonts: Sequence[SoundFont], strict: bool) -> tuple[list[SoundFont], list[str]]:
    """The General MIDI SoundFonts FluidSynth can load, each with the categories it has presets for,
    and a warning per one left out (``strict``, for SoundFonts the user named: raise instead)."""
    fs = _load_fluidsynth()
    quiet_fluidsynth_log()  # probing a missing preset is not an error to print
    good, warnings = [], []
    for font in fonts:
        synth = _new_synth(fs, 22050)
        try:
            playable = soundfont_categories(synth, _load_soundfont(synth, font.path))
            if len(playable) < MIN_GM_SHARE * len(CATEGORIES):
                raise ConfigError(f"not a General MIDI SoundFont: it has presets for {len(playable)} of the "
                                  f"{len(CATEGORIES)} instrument categories", font.path,
                                  "give a General MIDI .sf2/.sf3 file (a drum kit or single-instrument SoundFont "
                                  "puts other sounds at the General MIDI numbers)")
            good.append(replace(font, categories=frozenset(playable)))
        except ConfigError as err:
            if strict:
                raise
            warnings.append(f"{font.path}: {err.reason}; leaving it out")
        finally:
            synth.delete()
    return good, warnings


def soundfont_categories(synth, sfid: int) -> list[str]:
    """The categories the SoundFont ``sfid`` loaded in ``synth`` has a preset for (the General MIDI
    bank and program each plays; percussion on the drum channel)."""
    playable = []
    for category in CATEGORIES:
        channel = _FLUID_DRUM_CHANNEL if category.percussion else 0
        if synth.program_select(channel, sfid, category.bank, category.program) == 0:
            playable.append(category.name)
    return playable


def resolve_resources(renderer: str, soundfonts: Sequence[str | Path] | None, glyph_kinds: Sequence[str],
                      outline_font: Path | None, patches: Sequence[str | Path] = (),
                      makers: Sequence[str] | None = None,
                      glyph_styles: Sequence[str] | None = None) -> tuple[Resources, dict, list[str]]:
    """``(resources, report for synth.json, warnings)`` of a full-variety run.

    ``glyph_kinds``: the glyph styles that render here (``drawn`` and ``mono`` always do);
    ``patches``: GUS patch set folders; ``makers``: the kinds of sound maker to draw (None: all);
    ``glyph_styles``: the glyph styles to draw (None: :data:`GLYPHS`, those that render here).
    """
    warnings: list[str] = []
    fonts: list[SoundFont] = []
    if renderer != "additive":
        found = find_soundfonts(soundfonts)
        problem = fluidsynth_problem()
        if problem is not None:
            if renderer == "fluidsynth":
                raise ConfigError(problem, None, "install libfluidsynth3 and a GM SoundFont, or use --renderer additive")
            warnings.append(f"{problem}; the sound makers are the additive synthesizer, the physical models and real "
                            "recordings")
        elif not found:
            warnings.append("no General MIDI SoundFont found (install timgm6mb-soundfont, fluid-soundfont-gm, "
                            "musescore-general-soundfont or opl3-soundfont, or give --soundfont); using the additive "
                            "synthesizer, the physical models and real recordings")
        else:
            fonts, bad = loadable_soundfonts(found, strict=bool(soundfonts))
            warnings += bad
        if fonts and not any(f.stem in HELD_OUT["soundfont"] for f in fonts):
            warnings.append(f"the held-out SoundFont {HELD_OUT['soundfont'][0]} is not installed "
                            "(fluid-soundfont-gm): --split foreign has only held-out real takes and pictures")
    sample_dir = find_sample_dir()
    if sample_dir is None:
        warnings.append("no real recordings (install sonic-pi-samples); every source is synthesized")
    patch_sets = _patch_sets(patches)
    makers = _check_makers(makers, fonts, patch_sets, sample_dir)
    glyphs = _check_glyphs(glyph_styles, glyph_kinds)
    res = Resources(tuple(fonts), sample_dir, glyphs, BACKGROUNDS, MOTIONS, patch_sets, makers)
    report = {
        "soundfonts": {f.stem: str(f.path) for f in fonts},
        "patch_sets": {p.name: str(p.path) for p in patch_sets},
        "makers": list(makers) if makers is not None else None,
        "samples": str(sample_dir) if sample_dir else None,
        "held_out_real_files": list(HELD_OUT_REAL_FILES),
        "glyphs": list(glyphs),
        "outline_font": str(outline_font) if outline_font else None,
        "backgrounds": list(BACKGROUNDS),
        "motions": list(MOTIONS),
        "held_out": {k: list(v) for k, v in HELD_OUT.items()},
    }
    return res, report, warnings


def _patch_sets(folders: Sequence[str | Path]) -> tuple:
    sets = tuple(find_patch_set(folder) for folder in folders)
    names = [p.name for p in sets]
    if len(set(names)) != len(names):
        raise ConfigError("two --patches folders have the same name", None, "give patch sets in folders with distinct names")
    return sets


def _check_glyphs(styles: Sequence[str] | None, renderable: Sequence[str]) -> tuple[str, ...]:
    """The glyph styles to draw, in :data:`GLYPH_STYLES` order: ``styles`` (each known and rendering
    here; ``mono`` always renders) or, when None, the default :data:`GLYPHS` that render here."""
    if styles is None:
        return tuple(g for g in GLYPHS if g in renderable)
    asked = {s.strip() for s in styles if s.strip()}
    unknown = sorted(asked - set(GLYPH_STYLES))
    if unknown or not asked:
        raise ConfigError(f"unknown glyph style {', '.join(unknown) or '(none)'} in --glyphs", None,
                          f"use a comma-separated list of: {', '.join(GLYPH_STYLES)}")
    fonts = {"emoji": "install fonts-noto-color-emoji", "outline": "install fonts-symbola"}
    for style in sorted(asked):
        if style in fonts and style not in renderable:
            raise ConfigError(f"the {style} glyph style does not render here", None, f"{fonts[style]}, or leave it out of --glyphs")
    return tuple(g for g in GLYPH_STYLES if g in asked)


def _check_makers(makers: Sequence[str] | None, fonts: Sequence, patch_sets: Sequence, sample_dir) -> tuple[str, ...] | None:
    """``makers`` as a tuple (None: all kinds), each known and available here."""
    if makers is None:
        return None
    kinds = tuple(dict.fromkeys(m.strip() for m in makers if m.strip()))
    unknown = [m for m in kinds if m not in MAKER_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"unknown sound maker {', '.join(unknown) or '(none)'} in --makers", None,
                          f"use a comma-separated list of: {', '.join(MAKER_KINDS)}")
    missing = {"sf": (not fonts, "no SoundFont loads here (install fluid-soundfont-gm or give --soundfont)"),
               "patch": (not patch_sets, "no patch set was given (add --patches DIR, e.g. /usr/share/midi/freepats)"),
               "real": (sample_dir is None, "no real recordings here (install sonic-pi-samples)")}
    for kind in kinds:
        absent, fix = missing.get(kind, (False, ""))
        if absent:
            raise ConfigError(f"--makers asks for {kind}, which is not available", None, fix)
    return kinds
