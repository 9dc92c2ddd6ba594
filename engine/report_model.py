"""report.json as a typed model: rank 0 builds it (engine.report), the dashboard and the headless view read it.

Torch- and numpy-free, so both sides import it. The field order is the file's key order.

Reading is forgiving on purpose: keys this version does not know are ignored (a newer report opens in an
older ens-tui), and a section added later must have a default (`None` or an empty container), so a report
written before it existed still loads. To add a section, say `selective`: write a model for it, add
`selective: Selective | None = None` to `Report`, and fill it in `engine.report.build_report`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Part(BaseModel):
    # NaN (an AUROC of a degenerate set, say) is written as JSON's NaN, as json.dumps always did.
    model_config = ConfigDict(extra="ignore", frozen=True, ser_json_inf_nan="constants")


class Scores(_Part):
    """The four headline metrics of one predictive distribution (NLL, Brier and ECE: lower is better)."""

    accuracy: float
    nll: float
    brier: float
    ece: float


class ReliabilityBin(_Part):
    """One equal-width confidence bin of the reliability diagram (confidence and accuracy are 0 when empty)."""

    bin_lower: float
    bin_upper: float
    count: int
    confidence: float
    accuracy: float


class EnsembleScores(Scores):
    """The ensemble's scores and the reliability table its ECE comes from."""

    reliability: list[ReliabilityBin] = Field(default_factory=list)


class MemberScores(_Part):
    """One member on its own; a diverged member has no scores (None) and is left out of the ensemble."""

    member: int
    diverged: bool = False
    stopped: bool = False
    """Stopped by the user before its last epoch; in the ensemble with what it had learned."""
    lr_factor: float | None = None
    """Set for a diverged member restarted from its initial weights at this fraction of the learning rate."""
    accuracy: float | None = None
    nll: float | None = None
    brier: float | None = None
    ece: float | None = None


class Uncertainty(_Part):
    """Means over the test set, in nats: entropy = aleatoric + mutual_information (epistemic)."""

    entropy: float
    aleatoric: float
    mutual_information: float


class SizePoint(_Part):
    """Accuracy and NLL of the ensemble of the first `size` members, in member order (so it depends on it)."""

    size: int
    accuracy: float
    nll: float


class ProjectedNll(_Part):
    """The NLL the size law expects of an ensemble of `size` members."""

    size: int
    nll: float


class SizeLaw(_Part):
    """NLL(k) ≈ a + b/k fitted to an ensemble-size curve (engine.size_law): the usual law for averaging
    independent members, used to say what more members are worth."""

    a: float
    """The NLL an unbounded ensemble approaches."""
    b: float
    """How much of a lone member's NLL averaging can remove (NLL(1) − a under the law)."""
    sizes: int
    """The fit used the curve at sizes 1..sizes."""
    next_gain: float
    """The NLL the next member is expected to remove: b/k − b/(k+1) at k = sizes."""
    gain_95: int
    """The fewest members expected to reach 95 % of the attainable gain (observed NLL(1) − a); 20 when the curve
    follows the law exactly, fewer when the first members gained more than the law says."""
    projected: list[ProjectedNll] = Field(default_factory=list)


class StoppedEarly(_Part):
    """The run stopped handing out members (`train.stop_when_nll_gain_below`)."""

    members: int
    """Members trained."""
    reason: str


class SizeSpread(_Part):
    """Accuracy and NLL of ensembles of `size` members drawn at random: over `subsets` distinct subsets, the mean,
    the (population) standard deviation and the range.

    Every subset where there are few enough (engine.report.SIZE_SUBSETS), so size 1 is the mean member and the
    full size the ensemble exactly; a seeded sample of that many where there are more.
    """

    size: int
    subsets: int
    accuracy: float
    accuracy_sd: float
    accuracy_min: float
    accuracy_max: float
    nll: float
    nll_sd: float
    nll_min: float
    nll_max: float


class Histogram(_Part):
    """Counts of the in-distribution test entropies over `bins` (the len(counts) + 1 edges)."""

    bins: list[float]
    in_dist: list[float]


class OodHistogram(Histogram):
    """In-distribution and OOD entropies counted over the same edges, for side-by-side bars."""

    ood: list[float]


class OodScore(_Part):
    """How well one score tells an OOD set (the positive class) from in-distribution inputs; higher score = more OOD.

    `aupr_out`: average precision for OOD; `aupr_in`: for in-distribution (scores negated); `fpr95`: share of
    in-distribution inputs flagged at the threshold that catches 95 % of the OOD ones. `roc`: (fpr, tpr) points.
    """

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float
    roc: list[tuple[float, float]] = Field(default_factory=list)


class OodResult(_Part):
    """How well the ensemble's uncertainty tells one OOD set from the test set (AUROC 0.5 = not at all)."""

    auroc_entropy: float
    auroc_mi: float
    mean_entropy: float
    mean_mutual_information: float
    entropy_hist: OodHistogram
    mi_hist: OodHistogram | None = None
    """Mutual information counted in- and out-of-distribution over shared edges."""
    in_size: int = 0
    """In-distribution inputs scored against the set: a balanced comparison, the larger side sampled (seeded)
    down to the smaller's size (engine.ood); 0 in reports written before."""
    ood_size: int = 0
    scores: dict[str, OodScore] = Field(default_factory=dict)
    """By score name: msp, entropy, mutual_information, energy (as configured in [report] ood_scores)."""

class UncertainTestInput(_Part):
    """One of the test inputs the ensemble was least sure of; `image` is a [0, 1] thumbnail, rows of pixels."""

    index: int
    label: int
    prediction: int
    entropy: float
    mutual_information: float
    image: list[list[float]] | None = None


class RiskCoverage(_Part):
    """Selective prediction by one ranking: answer only the `coverage` share the score is surest of.

    `risk` is the error rate on the answered inputs; `aurc` the area under risk–coverage; `eaurc` that minus
    the best area possible at this accuracy; `accuracy_at` the accuracy at 90, 95 and 99 % coverage.
    """

    coverage: list[float]
    risk: list[float]
    aurc: float
    eaurc: float
    accuracy_at: dict[str, float]


class Selective(_Part):
    """Risk–coverage of the ensemble and of the mean member, by ranking (`confidence` = max probability, `entropy`)."""

    ensemble: dict[str, RiskCoverage]
    mean_member: dict[str, RiskCoverage]
    """Each figure averaged over the non-diverged members (curves point by point)."""


class Thresholds(_Part):
    """Verdict levels for new inputs, calibrated on this run's test split (nats), on the probabilities `ens-tui
    predict` gives: temperature-scaled when the report has a `calibration.temperature`.

    `uncertain` above `entropy`: the level that keeps 95 % of correctly classified test inputs confident.
    `out-of-distribution` above `mutual_information`: the level that flags 5 % of in-distribution test inputs.
    """

    entropy: float
    mutual_information: float


class CalibrationScores(_Part):
    nll: float
    ece: float
    brier: float


class Calibration(_Part):
    """The ensemble's calibration on the test split, and temperature scaling fitted on the validation split.

    ECE: 15 equal-width bins; adaptive ECE: 15 equal-mass bins; MCE: the largest bin gap; classwise ECE: the
    mean over classes of each class's one-vs-rest ECE. The temperature divides every member's logits before
    the softmax (fitted by LBFGS on the ensemble's validation NLL); `before`/`after` are test figures.
    """

    ece: float
    adaptive_ece: float
    mce: float
    classwise_ece: float
    temperature: float
    before: CalibrationScores
    after: CalibrationScores
    reliability_after: list[ReliabilityBin] = Field(default_factory=list)
    thresholds_before: Thresholds | None = None
    """Verdict thresholds on the unscaled probabilities (what `--no-temperature` judges by); the report's
    `thresholds` are on the temperature-scaled ones, as `ens-tui predict` scales by default."""


class ShiftPoint(_Part):
    """One corruption at one severity (severity 0: the clean sample)."""

    corruption: str
    severity: int
    accuracy: float
    nll: float
    ece: float
    entropy: float
    mutual_information: float


class Shift(_Part):
    """The test split under corruptions (MNIST-C / CIFAR-10-C style): does the ensemble stay calibrated?"""

    size: int
    """Test images (a seeded sample) each corruption and severity was applied to."""
    corruptions: list[str]
    severities: list[int]
    """0 (the clean sample, one point with corruption `clean`) and the severities applied."""
    ensemble: list[ShiftPoint]
    mean_member: list[ShiftPoint]
    """The non-diverged members' figures, averaged (a lone member has no mutual information: 0)."""


class Diversity(_Part):
    """How differently the members answer the test split."""

    disagreement: float
    """Share of inputs two members classify differently, averaged over member pairs."""
    kl_to_ensemble: float
    """Mean KL(member ‖ ensemble), nats."""
    error_correlation: float
    """Mean Pearson correlation of two members' error indicators, over member pairs."""


class ClassScores(_Part):
    name: str
    accuracy: float
    count: int


class PerClass(_Part):
    """The ensemble per true class; `confusion[i][j]` counts class i predicted as j."""

    classes: list[ClassScores]
    confusion: list[list[int]]


class Inputs(_Part):
    """How a raw image becomes a member's input (what `ens-tui predict` and export repeat).

    Images are resized to (height, width), converted to `channels`, scaled to [0, 1], then normalised
    with the training split's `mean` and `std`.
    """

    channels: int
    height: int
    width: int
    mean: float
    std: float


class ReportError(ValueError):
    """report.json cannot be read or is not a report; the message is one line saying which and why."""


class Partial(_Part):
    """Marks the report of the members trained so far (`python -m engine.partial`), written while the run trains or
    after it failed or was interrupted, into runs/<id>/partial/: never the run's own report."""

    members: int
    """Members in this report (k): those whose checkpoint had completed every epoch (diverged ones included)."""
    of: int
    """Members the run trains (K)."""


class Report(_Part):
    """Every figure of the uncertainty report (report.md shows the same ones, laid out for people)."""

    dataset: str = ""
    classes: list[str] = Field(default_factory=list)
    members_count: int
    partial: Partial | None = None
    """Set in a partial report only (k of K members); None in the run's own report."""
    diverged: list[int] = Field(default_factory=list)
    """Members left out of the ensemble because their loss went non-finite."""
    test_size: int
    ensemble: EnsembleScores
    members: list[MemberScores]
    mean_member: Scores
    """The average of the non-diverged members' scores."""
    best_member: MemberScores
    """The non-diverged member with the lowest validation NLL (test NLL in runs that saved no validation
    predictions), with its test scores."""
    uncertainty: Uncertainty
    ensemble_size_curve: list[SizePoint] = Field(default_factory=list)
    ensemble_size_subsets: list[SizeSpread] = Field(default_factory=list)
    """The size curve that does not depend on member order; empty in reports written before it."""
    size_law: SizeLaw | None = None
    """The law fitted to `ensemble_size_subsets` (None below two members)."""
    stopped_early: StoppedEarly | None = None
    """Set when the run stopped handing out members because the last ones gained too little."""
    in_dist_entropy_hist: Histogram
    ood: dict[str, OodResult] = Field(default_factory=dict)
    """Keyed by OOD set name (noise, rotate, invert …), in the order the run evaluated them."""
    most_uncertain: list[UncertainTestInput] = Field(default_factory=list)
    inputs: Inputs | None = None
    """None in reports written before ens-tui recorded it; such runs cannot be used by `predict`."""
    thresholds: Thresholds | None = None
    selective: Selective | None = None
    calibration: Calibration | None = None
    """None when the run saved no validation predictions (before ens-tui kept them)."""
    shift: Shift | None = None
    """None when `[report] shift = false` or the run saved no shifted predictions."""
    diversity: Diversity | None = None
    """None for a one-member ensemble."""
    per_class: PerClass | None = None
    figures: list[str] = Field(default_factory=list)
    """Pictures of this report, relative to the run folder (figures/*.png)."""

    @classmethod
    def read(cls, path: Path | str) -> Report:
        """Load report.json; raises ReportError (one line: the file and what is wrong) when it cannot."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ReportError(f"{path}: cannot read it ({err.strerror or err})") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise ReportError(f"{path}: not JSON ({err})") from None
        except RecursionError:
            raise ReportError(f"{path}: not JSON (nested too deeply)") from None
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"])) or "top level"
            more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
            raise ReportError(f"{path}: not a valid report: {where}: {first['msg']}{more}") from None

    def to_json(self) -> str:
        """The file's text: every key, one-space indents (what report.json has always looked like)."""
        return self.model_dump_json(indent=1)
