"""Checks of a UCSC track hub or assembly hub, as UCSC's ``hubCheck`` makes, plus its data.

:func:`check_hub` reads ``hub.txt`` (and ``genomes.txt`` / ``trackDb.txt``, or one
``useOneFile on`` file), and reports one line per problem, ``FILE:LINE: message``, with paths
relative to the hub folder:

* hub text: first line ``hub``; required settings; label lengths (``shortLabel`` <= 17,
  ``longLabel`` <= 76 characters); unique, well-formed track names; settings given twice;
  unknown settings; values of common settings; parents that exist and are containers;
  ``subGroups`` against the composite's ``subGroupN`` lines; faceted composites' metadata and
  subtrack names; files named by ``html``, ``descriptionUrl``, ``metaDataUrl``;
* data: every local ``bigDataUrl`` exists and opens with pyBigWig as the declared type, and its
  chromosomes are in the genome with the same sizes; an assembly hub's 2bit and ``chromSizes``
  agree; ``defaultPos`` lies on the genome. Remote URLs are not fetched.

Regions in ``defaultPos`` are 1-based inclusive, as browsers write them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from regtracks._util import RegtracksError, natural_key
from regtracks.config import DEFAULT_HUB, HubDefaults
from regtracks.tracks.manifest import MANIFEST_NAME, load_manifest
from regtracks.tracks.twobit import read_2bit_sizes

__all__ = ["check_hub", "HubCheck"]

_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_COLOR = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")

HUB_SETTINGS = frozenset(
    "hub shortLabel longLabel genomesFile email descriptionUrl useOneFile".split()
)
GENOME_SETTINGS = frozenset(
    """genome trackDb twoBitPath twoBitBptUrl twoBitBptURL chromSizes chromAlias chromAliasBb
    organism description defaultPos orderKey scientificName htmlPath groups blat transBlat
    isPcr taxId metaTab metaDb chromAuthority""".split()
)
# trackDb settings of UCSC's "Hub Track Database Definition" (common, bigWig, bigBed family,
# BAM/VCF, composite, faceted composite, multiWig, superTrack); subGroupN is matched apart.
TRACK_SETTINGS = frozenset(
    """track type shortLabel longLabel bigDataUrl bigDataIndex html visibility color altColor
    priority parent superTrack compositeTrack view container aggregate showSubtrackColorOnUi
    group metadata pennantIcon searchIndex searchTrix searchDef url urlLabel urls
    dataVersion labelFields defaultLabelFields chromosomes maxWindowToDraw maxWindowCoverage
    otherSpecies exonNumbers spectrum scoreMin scoreMax useScore itemRgb colorByStrand
    denseCoverage boxedCfg tableBrowser directUrl mouseOverField mouseOver noScoreFilter
    filter filterByRange filterLimits filterLabel filterType filterValues filterValuesDefault
    filterText highlightBy skipEmptyFields skipFields sepFields linkIdInName idInUrlSql
    autoScale alwaysZero graphTypeDefault gridDefault maxHeightPixels maxWindowToQuery
    negateValues smoothingWindow transformFunc viewLimits viewLimitsMax windowingFunction
    yLineMark yLineOnOff logo allButtonPair centerLabelsDense dragAndDrop hideEmptySubtracks
    subGroups dimensions filterComposite dimensionAchecked dimensionBchecked sortOrder
    configurable noInherit metaDataUrl primaryKey dataTypes subtrackUrls maxCheckboxes
    colorSettingsUrl baseColorDefault baseColorUseCds baseColorUseSequence showDiffBasesAllScales
    indelDoubleInsert indelQueryInsert indelPolyA bamColorMode bamGrayMode bamColorTag
    minAliQual pairEndsByName pairSearchRange showNames doWiggle bamSkipPrintQualScore
    vcfDoFilter vcfDoMaf vcfDoQual applyMinQual minQual minFreq maxItems minTableRows
    hapClusterEnabled hapClusterColorBy hapClusterTreeAngle hapClusterHeight vcfPhasedTrio
    showLabels interactDirectional interactUp interactMultiRegion maxHeightPixels
    barChartBars barChartColors barChartLabel barChartMaxSize barChartSizeWindows barChartMetric
    barChartUnit barChartMatrixUrl barChartSampleUrl lollyField lollySizeField
    lollyMaxSize lollyNoStems frames summary speciesOrder speciesGroups sGroup_ hicArcLimit
    nextExonText prevExonText detailsTabUrls extraTableFields missingDataAsZero
    hideEmptySubtracksMultiBedUrl hideEmptySubtracksSourcesUrl hideEmptySubtracksLabel
    dataTypes style detailsScript sampleMetadataFile""".split()
)
TRACK_TYPES = frozenset(
    """bigWig bigBed bigNarrowPeak bigGenePred bigChain bigMaf bigPsl bigBarChart bigInteract
    bigLolly bigDbSnp bigRmsk bigMethyl bam cram vcfTabix vcfPhasedTrio hic halSnake
    bigQuickLiftChain wig bed""".split()
)
CONTAINER_KEYS = ("compositeTrack", "superTrack", "container", "view")
VISIBILITIES = frozenset("hide dense squish pack full".split())
_SUBGROUP = re.compile(r"^subGroup[1-9]$")
_REGION = re.compile(r"^([^:\s]+):([\d,]+)-([\d,]+)$")


@dataclass(frozen=True)
class HubCheck:
    """Result of :func:`check_hub`.

    Attributes
    ----------
    hub_file : Path
        The ``hub.txt`` checked.
    problems : tuple of str
        One line each: ``FILE:LINE: message`` (paths relative to the hub folder).
    genomes : tuple of str
    n_tracks : int
        Track stanzas (containers included).
    n_files : int
        Local data files opened and checked.
    """

    hub_file: Path
    problems: tuple[str, ...]
    genomes: tuple[str, ...]
    n_tracks: int
    n_files: int

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Stanza:
    path: Path
    line: int
    items: dict[str, tuple[str, int]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.order[0]

    @property
    def name(self) -> str:
        return self.items[self.order[0]][0].split()[0] if self.items[self.order[0]][0] else ""

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.items[key][0] if key in self.items else default

    def line_of(self, key: str) -> int:
        return self.items[key][1] if key in self.items else self.line


class _Checker:
    def __init__(self, base: Path, cfg: HubDefaults):
        self.base = base
        self.cfg = cfg
        self.problems: list[str] = []
        self.n_files = 0

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.base.resolve()).as_posix()
        except ValueError:
            return str(path)

    def add(self, path: Path, line: int, msg: str) -> None:
        self.problems.append(f"{self.rel(path)}:{line}: {msg}")

    # -- parsing -------------------------------------------------------------------------
    def parse(self, path: Path, _depth: int = 0) -> list[_Stanza]:
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            self.add(path, 0, f"cannot read ({exc.strerror or exc})")
            return []
        lines = text.splitlines()
        stanzas: list[_Stanza] = []
        cur: _Stanza | None = None
        i = 0
        while i < len(lines):
            lineno, raw = i + 1, lines[i]
            i += 1
            while raw.rstrip().endswith("\\") and i < len(lines):
                raw = raw.rstrip()[:-1] + " " + lines[i].strip()
                i += 1
            s = raw.strip()
            if not s:
                cur = None
                continue
            if s.startswith("#"):
                continue
            parts = s.split(None, 1)
            key, val = parts[0], (parts[1].strip() if len(parts) > 1 else "")
            if key == "include" and cur is None:
                inc = path.parent / val.split()[0] if val else path
                if not val or not inc.is_file():
                    self.add(path, lineno, f"include {val}: file not found")
                elif _depth > 10:
                    self.add(path, lineno, "include nested too deeply")
                else:
                    stanzas += self.parse(inc, _depth + 1)
                continue
            if cur is None:
                cur = _Stanza(path, lineno)
                stanzas.append(cur)
            if key in cur.items:
                self.add(path, lineno, f"{cur.key} {cur.name}: setting {key} given twice")
            else:
                cur.order.append(key)
            cur.items[key] = (val, lineno)
        return stanzas

    def local(self, stanza: _Stanza, value: str) -> Path | None:
        """Local path of a relative or file URL; None for a remote URL."""
        if re.match(r"^(https?|ftp)://", value, re.I):
            return None
        if value.startswith("file://"):
            value = value[7:]
        p = Path(unquote(value))
        return p if p.is_absolute() else stanza.path.parent / p

    def label(self, st: _Stanza, key: str, limit: int) -> None:
        val = st.get(key)
        if val is None:
            return
        if not val:
            self.add(st.path, st.line_of(key), f"{st.key} {st.name}: {key} is empty")
        elif len(val) > limit:
            self.add(
                st.path,
                st.line_of(key),
                f"{st.key} {st.name}: {key} {val!r} has {len(val)} characters "
                f"(UCSC allows {limit})",
            )

    # -- hub and genomes -----------------------------------------------------------------
    def check_hub_stanza(self, st: _Stanza) -> None:
        for key in ("hub", "shortLabel", "longLabel", "email"):
            if key not in st.items:
                self.add(st.path, st.line, f"hub {st.name}: required setting {key} is missing")
        one = (st.get("useOneFile") or "").lower() == "on"
        if not one and "genomesFile" not in st.items:
            self.add(st.path, st.line, f"hub {st.name}: genomesFile (or useOneFile on) is missing")
        if "useOneFile" in st.items and st.get("useOneFile") not in ("on", "off"):
            self.add(st.path, st.line_of("useOneFile"), "useOneFile must be on or off")
        for key in st.order:
            if key not in HUB_SETTINGS:
                self.add(st.path, st.line_of(key), f"hub {st.name}: unknown hub setting {key}")
        self.label(st, "shortLabel", self.cfg.short_label_max)
        self.label(st, "longLabel", self.cfg.hub_long_label_max)
        self.file_setting(st, "descriptionUrl")

    def file_setting(self, st: _Stanza, key: str, *, html: bool = False) -> Path | None:
        val = st.get(key)
        if not val:
            return None
        path = self.local(st, val)
        if path is None:
            return None
        if not path.is_file() and html and not path.suffix:
            path = path.with_name(path.name + ".html")
        if not path.is_file():
            self.add(st.path, st.line_of(key), f"{st.key} {st.name}: {key} {val}: file not found")
            return None
        return path

    def genome_sizes(self, st: _Stanza, manifest_sizes: dict | None) -> dict[str, int] | None:
        for key in st.order:
            if key not in GENOME_SETTINGS:
                self.add(
                    st.path, st.line_of(key), f"genome {st.name}: unknown genome setting {key}"
                )
        sizes: dict[str, int] | None = None
        if "twoBitPath" in st.items:
            for key in ("organism", "defaultPos"):
                if key not in st.items:
                    self.add(
                        st.path, st.line, f"genome {st.name}: assembly hub setting {key} is missing"
                    )
            tb = self.file_setting(st, "twoBitPath")
            if tb is not None:
                try:
                    sizes = dict(read_2bit_sizes(tb))
                    self.n_files += 1
                except RegtracksError as exc:
                    msg = str(exc).split(": ", 1)[-1]
                    self.add(st.path, st.line_of("twoBitPath"), f"genome {st.name}: {msg}")
            cs = self.file_setting(st, "chromSizes")
            if cs is not None:
                listed = self.read_chrom_sizes(cs)
                if sizes is None:
                    sizes = listed
                elif listed is not None and listed != sizes:
                    diff = []
                    for c in sorted(set(listed) | set(sizes), key=natural_key):
                        a, b = listed.get(c), sizes.get(c)
                        if a != b:
                            here = "absent" if a is None else f"{a:,}"
                            there = "absent" if b is None else f"{b:,}"
                            diff.append(f"{c} {here} vs {there}")
                    self.add(
                        st.path,
                        st.line_of("chromSizes"),
                        f"genome {st.name}: chromSizes {st.get('chromSizes')} disagrees with "
                        f"the 2bit ({'; '.join(diff[:4])}{'; ...' if len(diff) > 4 else ''})",
                    )
        elif manifest_sizes is not None:
            sizes = manifest_sizes
        pos = st.get("defaultPos")
        if pos is not None:
            m = _REGION.match(pos)
            if not m:
                self.add(
                    st.path,
                    st.line_of("defaultPos"),
                    f"genome {st.name}: defaultPos {pos!r} is not chrom:start-end",
                )
            elif sizes is not None:
                chrom, end = m.group(1), int(m.group(3).replace(",", ""))
                if chrom not in sizes:
                    self.add(
                        st.path,
                        st.line_of("defaultPos"),
                        f"genome {st.name}: defaultPos chromosome {chrom} is not in the genome",
                    )
                elif end > sizes[chrom]:
                    self.add(
                        st.path,
                        st.line_of("defaultPos"),
                        f"genome {st.name}: defaultPos ends at {end:,}, past the end of "
                        f"{chrom} ({sizes[chrom]:,} bp)",
                    )
        return sizes

    def read_chrom_sizes(self, path: Path) -> dict[str, int] | None:
        sizes: dict[str, int] = {}
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            f = line.split()
            if not f or f[0].startswith("#"):
                continue
            if len(f) < 2 or not f[1].isdigit():
                self.add(path, i, "not 'chrom<TAB>size'")
                return None
            sizes[f[0]] = int(f[1])
        return sizes

    # -- tracks --------------------------------------------------------------------------
    def check_tracks(self, tracks: list[_Stanza], sizes: dict[str, int] | None, genome: str):
        by_name: dict[str, _Stanza] = {}
        for st in tracks:
            name = st.name
            if name in by_name:
                first = by_name[name]
                self.add(
                    st.path,
                    st.line,
                    f"track {name}: name used twice (first at {self.rel(first.path)}:{first.line})",
                )
                continue
            by_name[name] = st
            if not _SYMBOL.match(name):
                self.add(
                    st.path,
                    st.line,
                    f"track {name}: name must start with a letter and hold only letters, "
                    "digits and underscores",
                )

        def chain(st: _Stanza) -> list[_Stanza]:
            out, seen = [st], {st.name}
            while True:
                p = (out[-1].get("parent") or out[-1].get("superTrack") or "").split()
                if not p or p[0] in ("on", "off") or p[0] in seen or p[0] not in by_name:
                    return out
                seen.add(p[0])
                out.append(by_name[p[0]])

        def inherited(st: _Stanza, key: str) -> str | None:
            for s in chain(st):
                if key in s.items:
                    return s.get(key)
            return None

        for st in tracks:
            if by_name.get(st.name) is not st:
                continue
            name = st.name
            container = any(k in st.items for k in CONTAINER_KEYS if k != "superTrack") or (
                (st.get("superTrack") or "").split()[:1] == ["on"]
            )
            for key in ("shortLabel", "longLabel"):
                if key not in st.items:
                    self.add(st.path, st.line, f"track {name}: required setting {key} is missing")
            self.label(st, "shortLabel", self.cfg.short_label_max)
            self.label(st, "longLabel", self.cfg.long_label_max)
            for key in st.order:
                if key not in TRACK_SETTINGS and not _SUBGROUP.match(key):
                    self.add(st.path, st.line_of(key), f"track {name}: unknown setting {key}")
            is_super = (st.get("superTrack") or "").split()[:1] == ["on"]
            ttype = inherited(st, "type")
            if ttype is None and not is_super:
                self.add(st.path, st.line, f"track {name}: no type (here or in a parent)")
            elif ttype is not None and ttype.split()[0] not in TRACK_TYPES:
                self.add(
                    st.path, st.line_of("type"), f"track {name}: unknown type {ttype.split()[0]}"
                )
            elif ttype is not None and ttype.split()[0] == "bigWig" and len(ttype.split()) > 1:
                self.number_pair(st, "type", ttype.split()[1:], "bigWig min max")
            if not container and "bigDataUrl" not in st.items:
                self.add(st.path, st.line, f"track {name}: bigDataUrl is missing")
            self.values(st)
            self.parent(st, by_name)
            self.file_setting(st, "html", html=True)
            if st.get("compositeTrack") == "faceted":
                self.faceted(
                    st, [t for t in tracks if (t.get("parent") or "").split()[:1] == [name]]
                )
            if "bigDataUrl" in st.items and not container:
                self.data(st, (ttype or "").split()[:1], sizes, genome)

    def number_pair(self, st: _Stanza, key: str, vals: list[str], what: str) -> None:
        try:
            lo, hi = (float(v) for v in vals[:2])
            bad = len(vals) != 2 or not lo < hi
        except ValueError:
            bad = True
        if bad:
            self.add(
                st.path, st.line_of(key), f"track {st.name}: {key} {' '.join(vals)} is not {what}"
            )

    def values(self, st: _Stanza) -> None:
        name = st.name
        vis = st.get("visibility")
        if vis is not None and vis not in VISIBILITIES:
            self.add(st.path, st.line_of("visibility"), f"track {name}: visibility {vis!r} unknown")
        for key in ("color", "altColor"):
            val = st.get(key)
            if val is not None:
                m = _COLOR.match(val)
                if not m or any(int(v) > 255 for v in m.groups()):
                    self.add(st.path, st.line_of(key), f"track {name}: {key} {val!r} is not R,G,B")
        if st.get("viewLimits") is not None:
            self.number_pair(st, "viewLimits", st.get("viewLimits").split(":"), "min:max")
        mh = st.get("maxHeightPixels")
        if mh is not None and not re.fullmatch(r"\d+(:\d+){0,2}", mh):
            self.add(
                st.path, st.line_of("maxHeightPixels"), f"track {name}: maxHeightPixels {mh!r}"
            )
        for key, allowed in (
            ("windowingFunction", ("mean", "maximum", "minimum", "mean+whiskers")),
            ("autoScale", ("on", "off", "group")),
            ("compositeTrack", ("on", "faceted")),
        ):
            val = st.get(key)
            if val is not None and val not in allowed:
                self.add(
                    st.path,
                    st.line_of(key),
                    f"track {name}: {key} {val!r} is not one of {', '.join(allowed)}",
                )

    def parent(self, st: _Stanza, by_name: dict[str, _Stanza]) -> None:
        val = st.get("parent")
        if val is None:
            return
        words = val.split()
        pname = words[0] if words else ""
        if len(words) > 1 and words[1] not in ("on", "off"):
            self.add(st.path, st.line_of("parent"), f"track {st.name}: parent {val!r}: on or off?")
        par = by_name.get(pname)
        if par is None:
            self.add(
                st.path, st.line_of("parent"), f"track {st.name}: parent {pname} does not exist"
            )
            return
        if not any(k in par.items for k in CONTAINER_KEYS):
            self.add(
                st.path,
                st.line_of("parent"),
                f"track {st.name}: parent {pname} is not a composite, view or container",
            )
            return
        defs = {}
        for key in par.order:
            if _SUBGROUP.match(key):
                f = (par.get(key) or "").split()
                if len(f) >= 2:
                    defs[f[0]] = {v.split("=", 1)[0] for v in f[2:]}
        if par.get("compositeTrack") == "faceted":
            if "subGroups" in st.items:
                self.add(
                    st.path,
                    st.line_of("subGroups"),
                    f"track {st.name}: subtracks of a faceted composite take no subGroups",
                )
            return
        if not defs:
            return
        given = {}
        for item in (st.get("subGroups") or "").split():
            tag, _, v = item.partition("=")
            given[tag] = v
        if "subGroups" not in st.items:
            self.add(
                st.path, st.line, f"track {st.name}: subGroups missing (parent {pname} has them)"
            )
            return
        for tag, allowed in defs.items():
            if tag not in given:
                self.add(
                    st.path, st.line_of("subGroups"), f"track {st.name}: subGroups lacks {tag}"
                )
            elif given[tag] not in allowed:
                self.add(
                    st.path,
                    st.line_of("subGroups"),
                    f"track {st.name}: subGroups {tag}={given[tag]} is not defined in {pname}",
                )
        for tag in given:
            if tag not in defs:
                self.add(
                    st.path,
                    st.line_of("subGroups"),
                    f"track {st.name}: subGroups {tag} is not a subGroup of {pname}",
                )

    def faceted(self, st: _Stanza, children: list[_Stanza]) -> None:
        for key in ("metaDataUrl", "primaryKey"):
            if key not in st.items:
                self.add(st.path, st.line, f"track {st.name}: faceted composite needs {key}")
        meta = self.file_setting(st, "metaDataUrl")
        if meta is None or "primaryKey" not in st.items:
            return
        rows = [r.split("\t") for r in meta.read_text(errors="replace").splitlines() if r.strip()]
        head = rows[0] if rows else []
        pk = st.get("primaryKey")
        if pk not in head:
            self.add(
                st.path,
                st.line_of("primaryKey"),
                f"track {st.name}: primaryKey {pk} is not a column of {st.get('metaDataUrl')}",
            )
            return
        col = head.index(pk)
        keys = {r[col] for r in rows[1:] if len(r) > col}
        types = [t.split("|")[0] for t in (st.get("dataTypes") or "").split()]
        for child in children:
            suffix = (
                child.name[len(st.name) + 1 :] if child.name.startswith(st.name + "_") else None
            )
            ok = suffix is not None and (
                suffix in keys or any(suffix == f"{k}_{d}" for k in keys for d in types)
            )
            if not ok:
                self.add(
                    child.path,
                    child.line,
                    f"track {child.name}: a faceted composite's subtrack must be named "
                    f"{st.name}_<{pk}> with its {pk} in {st.get('metaDataUrl')}",
                )

    def data(self, st: _Stanza, ttype: list[str], sizes: dict[str, int] | None, genome: str):
        url = st.get("bigDataUrl") or ""
        path = self.local(st, url)
        if path is None:
            return
        line = st.line_of("bigDataUrl")
        if not path.is_file():
            self.add(st.path, line, f"track {st.name}: bigDataUrl {url}: file not found")
            return
        if ttype[:1] != ["bigWig"] and ttype[:1] != ["bigBed"]:
            return
        import pyBigWig

        try:
            bw = pyBigWig.open(str(path))
        except (RuntimeError, OSError):
            bw = None
        want = "isBigWig" if ttype[0] == "bigWig" else "isBigBed"
        if bw is None or not getattr(bw, want)():
            self.add(
                st.path,
                line,
                f"track {st.name}: bigDataUrl {url}: pyBigWig cannot open it as a {ttype[0]}",
            )
            if bw is not None:
                bw.close()
            return
        self.n_files += 1
        try:
            chroms = bw.chroms()
            levels = bw.header().get("nLevels", 1) if ttype[0] == "bigWig" else 1
        finally:
            bw.close()
        if levels == 0:
            self.add(
                st.path,
                line,
                f"track {st.name}: {url}: no zoom levels (IGV cannot read it; write it with "
                "zoom levels, e.g. pyBigWig maxZooms > 0)",
            )
        if sizes is None:
            return
        for chrom, n in chroms.items():
            if chrom not in sizes:
                self.add(
                    st.path, line, f"track {st.name}: {url}: chromosome {chrom} is not in {genome}"
                )
            elif n != sizes[chrom]:
                self.add(
                    st.path,
                    line,
                    f"track {st.name}: {url}: {chrom} is {n:,} bp there but "
                    f"{sizes[chrom]:,} bp in {genome}",
                )


def _manifest_sizes(base: Path, genome: str) -> dict[str, int] | None:
    """Chromosome sizes of a UCSC-hosted genome, from a regtracks manifest beside the hub."""
    path = base / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        g = load_manifest(base)["genome"]
    except RegtracksError:
        return None
    if genome not in (g["ucsc"], g["name"]):
        return None
    return {c: int(s) for c, s in g["chrom_sizes"]}


def check_hub(hub_dir: str | os.PathLike, *, cfg: HubDefaults = DEFAULT_HUB) -> HubCheck:
    """Check a hub's text as UCSC's hubCheck does, and its data files.

    Hub text: first line ``hub``; required settings of the hub, genome and track stanzas
    (``hub shortLabel longLabel email``, ``genomesFile`` or ``useOneFile on``; ``genome``,
    ``trackDb``; assembly hubs ``twoBitPath organism defaultPos``; tracks ``shortLabel
    longLabel type`` and ``bigDataUrl`` unless a container); label lengths (17 / 76
    characters); unique, well-formed track names; settings named twice; unknown settings; values
    of visibility, color, viewLimits, maxHeightPixels, windowingFunction, autoScale; parents
    that exist and are containers; subGroups against their composite's definitions; faceted
    composites' metadata and subtrack names; files named by ``html``, ``descriptionUrl``,
    ``metaDataUrl``. Data: each local ``bigDataUrl`` exists and opens with pyBigWig, and its
    chromosomes are in the genome with the same sizes (the genome's 2bit and ``chromSizes``,
    which must agree, or for a UCSC-hosted genome the ``manifest.json`` beside the hub).
    Remote URLs are not fetched.

    Parameters
    ----------
    hub_dir : str or Path
        A hub folder (holding ``hub.txt``) or a hub file.

    Returns
    -------
    HubCheck
        ``problems`` is empty for a good hub.
    """
    path = Path(hub_dir).expanduser()
    if not path.exists():
        raise RegtracksError(f"{path}: no such hub folder or hub file")
    hub_file = path if path.is_file() else path / "hub.txt"
    base = hub_file.parent
    ck = _Checker(base, cfg)
    if not hub_file.is_file():
        ck.problems.append(f"{hub_file}: hub file not found")
        return HubCheck(hub_file, tuple(ck.problems), (), 0, 0)
    stanzas = ck.parse(hub_file)
    if not stanzas:
        ck.add(hub_file, 1, "empty hub file")
        return HubCheck(hub_file, tuple(ck.problems), (), 0, 0)
    first = stanzas[0]
    if first.key != "hub" or first.line != _first_content_line(hub_file):
        ck.add(hub_file, first.line, f"the first line must be 'hub <name>', not '{first.key} ...'")
        return HubCheck(hub_file, tuple(ck.problems), (), 0, 0)
    ck.check_hub_stanza(first)
    pairs: list[tuple[_Stanza, list[_Stanza]]] = []
    if (first.get("useOneFile") or "").lower() == "on":
        rest = stanzas[1:]
        if not rest or rest[0].key != "genome":
            ck.add(
                hub_file,
                rest[0].line if rest else first.line,
                "useOneFile hub: genome stanza must follow the hub stanza",
            )
        genomes = [s for s in rest if s.key == "genome"]
        if len(genomes) > 1:
            ck.add(hub_file, genomes[1].line, "useOneFile hub: only one genome stanza is allowed")
        tracks = []
        for s in rest:
            if s.key not in ("genome", "track"):
                ck.add(s.path, s.line, f"stanza starting with {s.key} is neither genome nor track")
            elif s.key == "track":
                tracks.append(s)
        if genomes:
            pairs.append((genomes[0], tracks))
    elif first.get("genomesFile"):
        gfile = ck.file_setting(first, "genomesFile")
        for gs in ck.parse(gfile) if gfile else []:
            if gs.key != "genome":
                ck.add(gs.path, gs.line, f"genomes file stanza starts with {gs.key}, not genome")
                continue
            if "trackDb" not in gs.items:
                ck.add(gs.path, gs.line, f"genome {gs.name}: required setting trackDb is missing")
                pairs.append((gs, []))
                continue
            tdb = ck.file_setting(gs, "trackDb")
            tracks = []
            for s in ck.parse(tdb) if tdb else []:
                if s.key != "track":
                    ck.add(s.path, s.line, f"trackDb stanza starts with {s.key}, not track")
                else:
                    tracks.append(s)
            pairs.append((gs, tracks))
    n_tracks = 0
    for gs, tracks in pairs:
        sizes = ck.genome_sizes(gs, _manifest_sizes(base, gs.name))
        ck.check_tracks(tracks, sizes, gs.name)
        n_tracks += len(tracks)
    return HubCheck(
        hub_file, tuple(ck.problems), tuple(g.name for g, _ in pairs), n_tracks, ck.n_files
    )


def _first_content_line(path: Path) -> int:
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            return i
    return 0
