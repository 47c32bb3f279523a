"""A reproducible Fujian data set for the demo: agencies, enterprises and their grade histories.

Everything is generated from a seed: nine prefecture-level cities, several industry schemes,
valid unified social credit codes, and per-enterprise event sequences that respect the grade
state machine (domain.md §3), so the only refusals in the demo are the deliberate ones.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from contracts.dates import add_months
from contracts.registry import MESSAGE_TYPES
from contracts.uscc import complete_uscc

CITIES = {
    "350100": "福州",
    "350200": "厦门",
    "350300": "莆田",
    "350400": "三明",
    "350500": "泉州",
    "350600": "漳州",
    "350700": "南平",
    "350800": "龙岩",
    "350900": "宁德",
}
# (GB/T 4754 section, grading scheme, a name stem)
INDUSTRIES = (
    ("C", "industry_trade", "机械制造"),
    ("C", "hazardous_chemicals", "化工"),
    ("C", "metal_smelting", "冶金"),
    ("B", "non_coal_mining", "矿业"),
    ("C", "fireworks", "烟花"),
    ("E", "construction", "建设工程"),
    ("G", "transport", "物流运输"),
    ("C", "small_micro", "五金加工"),
)
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
LEGAL_NAMES = ("林某", "陈某某", "黄某", "张某某", "吴某", "郑某某", "王某", "刘某某")


@dataclass(frozen=True)
class DemoAgency:
    agency_id: str
    name: str
    uscc: str
    roles: tuple[str, ...]
    publish: tuple[str, ...]


# What work-safety supervision records (四（一）（二）): inspections, orders and re-checks.
SUPERVISION_TYPES = ("inspection.recorded", "rectification.ordered", "rectification.verified")
# Everything a grading authority decides (hazard orders too); the implementing agencies'
# feedback is theirs, inspections and re-checks the supervisor's.
GRADING_TYPES = tuple(
    t
    for t in MESSAGE_TYPES
    if t not in ("measure.applied", "inspection.recorded", "rectification.verified")
)
AGENCIES = (
    DemoAgency(
        "fj-yjt",
        "福建省应急管理厅",
        complete_uscc("11350000MB000001"),
        ("grading_authority", "listing_department"),
        GRADING_TYPES,
    ),
    DemoAgency(
        "fj-yjt-zf",
        "福建省应急管理综合行政执法总队",
        complete_uscc("12350000MB000004"),
        ("work_safety_supervisor",),
        SUPERVISION_TYPES,
    ),
    DemoAgency(
        "fj-picc",
        "人保财险福建省分公司",
        complete_uscc("91350000MA000001"),
        ("insurer",),
        ("measure.applied",),
    ),
    DemoAgency(
        "fj-cib",
        "兴业银行福州分行",
        complete_uscc("91350100MA000009"),
        ("bank",),
        ("measure.applied",),
    ),
    DemoAgency(
        "fj-dsj",
        "福建省大数据管理局",
        complete_uscc("11350000MB000003"),
        ("operator",),
        (),
    ),
    DemoAgency(
        "fj-scjg",
        "福建省市场监督管理局",
        complete_uscc("11350000MB000002"),
        ("market_regulator", "credit_disclosure"),
        ("measure.applied",),
    ),
)


@dataclass
class Step:
    """One message to publish: who signs it, its type, subject and data."""

    issuer: str
    type: str
    subject: str
    data: dict[str, Any]
    story: str = ""
    refers_to: int | None = None  # position of the decision a measure.applied answers
    cites: tuple[int, ...] = ()  # the causes a revocation cites: -1 is the step before it
    inspection: int | None = None  # the inspection an order cites: -1 is the step before it


@dataclass
class Enterprise:
    uscc: str
    name: str
    region_code: str
    section: str
    scheme: str
    required: bool
    steps: list[Step] = field(default_factory=list)


def _code(region: str, n: int) -> str:
    org = "MA" + "".join(ALPHABET[(n // 31**k) % 31] for k in range(5, -1, -1))
    return complete_uscc(f"91{region}{org}")


def _day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange(max(1, (end - start).days)))


def _three_years(start: dt.date) -> dt.date:
    """The last day of a validity of three years from `start` (from 29 February: the 28th)."""
    return add_months(start, 36) - dt.timedelta(days=1)


def build_enterprises(count: int, seed: int, today: dt.date) -> list[Enterprise]:
    """`count` enterprises with histories that end no later than `today`."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible sample data, not secrets
    cities = list(CITIES)
    result: list[Enterprise] = []
    for n in range(count):
        city = cities[n % len(cities)]
        region = city[:4] + f"{rng.randrange(1, 6):02d}"
        section, scheme, stem = INDUSTRIES[rng.randrange(len(INDUSTRIES))]
        ent = Enterprise(
            uscc=_code(region, n + 1),
            name=f"{CITIES[city]}{stem}第{n + 1}有限公司",
            region_code=region,
            section=section,
            scheme=scheme,
            required=rng.random() < 0.85,
        )
        registered = _day(rng, dt.date(2021, 1, 1), dt.date(2022, 12, 31))
        ent.steps.append(
            Step(
                "fj-yjt",
                "enterprise.registered",
                ent.uscc,
                {
                    "name": ent.name,
                    "legal_representative": LEGAL_NAMES[n % len(LEGAL_NAMES)],
                    "region_code": region,
                    "industry_section": section,
                    "scheme": scheme,
                    "required": ent.required,
                    "registered_on": registered.isoformat(),
                },
            )
        )
        if rng.random() < 0.78:
            _grade_history(rng, ent, today)
        result.append(ent)
    return result


def _grade_history(rng: random.Random, ent: Enterprise, today: dt.date) -> None:
    level = (
        "small_micro"
        if ent.scheme == "small_micro"
        else rng.choices(["1", "2", "3"], weights=[12, 38, 50])[0]
    )
    announced = _day(rng, dt.date(2023, 1, 1), dt.date(2025, 9, 30))
    valid_to = _three_years(announced)
    seq = rng.randrange(1, 999)
    ent.steps.append(
        Step(
            "fj-yjt",
            "grade.awarded",
            ent.uscc,
            {
                "level": level,
                "scheme": ent.scheme,
                "authority_level": "provincial" if level in ("1", "2") else "city",
                "announcement_no": f"闽应急公告〔{announced.year}〕{seq}号",
                "certificate_no": f"闽AQB{ent.region_code}{announced.year}{seq:04d}",
                "announced_on": announced.isoformat(),
                "valid_from": announced.isoformat(),
                "valid_to": valid_to.isoformat(),
            },
        )
    )
    if rng.random() < 0.3:
        ent.steps.append(
            Step(
                "fj-yjt",
                "self_assessment.published",
                ent.uscc,
                {
                    "year": announced.year,
                    "report_uri": f"https://yjt.fujian.example/zp/{announced.year}/{ent.uscc}.pdf",
                    "published_on": f"{announced.year + 1}-01-20",
                },
            )
        )
    if valid_to < today:
        fate = rng.random()
        if fate < 0.25:  # lapsed, and nobody published its expiry: 未达标 all the same
            return
        if fate < 0.65:
            start = valid_to + dt.timedelta(days=1)
            ent.steps.append(
                Step(
                    "fj-yjt",
                    "grade.renewed",
                    ent.uscc,
                    {
                        "level": level,
                        "certificate_no": f"闽AQB{ent.region_code}{start.year}{seq:04d}R",
                        "announcement_no": f"闽应急公告〔{start.year}〕{seq}号",
                        "announced_on": (valid_to - dt.timedelta(days=20)).isoformat(),
                        "valid_from": start.isoformat(),
                        "valid_to": _three_years(start).isoformat(),
                    },
                )
            )
        else:
            ent.steps.append(
                Step(
                    "fj-yjt",
                    "grade.expired",
                    ent.uscc,
                    {
                        "valid_to": valid_to.isoformat(),
                        "expired_on": (valid_to + dt.timedelta(days=1)).isoformat(),
                    },
                )
            )
            return
    if level in ("1", "2") and rng.random() < 0.04:
        decided = min(today, announced + dt.timedelta(days=400))
        ent.steps.append(
            Step(
                "fj-yjt",
                "grade.downgraded",
                ent.uscc,
                {
                    "from_level": level,
                    "to_level": str(int(level) + 1),
                    "decision_no": f"闽应急决〔{decided.year}〕{seq}号",
                    "decided_on": decided.isoformat(),
                    "reason": "复核发现安全生产标准化管理体系运行不符合原等级要求",
                },
            )
        )
    if rng.random() < 0.05:
        occurred = min(today - dt.timedelta(days=10), announced + dt.timedelta(days=200))
        ent.steps.append(
            Step(
                "fj-yjt",
                "accident.reported",
                ent.uscc,
                {
                    "accident_id": f"{ent.region_code}-ACC-{seq:04d}",
                    "occurred_on": occurred.isoformat(),
                    "accident_class": "ordinary",
                    "deaths": 0,
                    "serious_injuries": 1,
                    "direct_loss_cny": 180_000,
                },
            )
        )


def dramatic_events(ents: list[Enterprise], today: dt.date) -> list[Step]:
    """The stories the demo narrates: a fatal accident and an unrectified major hazard, each
    ending in a revocation that the insurer and the bank answer, and a black-list entry."""
    active = [
        e
        for e in ents
        if e.steps[-1].type in ("grade.awarded", "grade.renewed")
        and dt.date.fromisoformat(e.steps[-1].data["valid_to"]) >= today
    ]
    ungraded = [e for e in ents if len(e.steps) == 1]
    steps: list[Step] = []
    if len(active) < 5 or len(ungraded) < 2:
        return steps
    fatal, hazard, listed, inspected, renamed = active[:5]
    occurred = today - dt.timedelta(days=40)
    steps.append(
        Step(
            "fj-yjt",
            "accident.reported",
            fatal.uscc,
            {
                "accident_id": f"{fatal.region_code}-ACC-9001",
                "occurred_on": occurred.isoformat(),
                "accident_class": "ordinary",
                "deaths": 1,
                "serious_injuries": 2,
                "direct_loss_cny": 2_400_000,
                "description": "检修作业时发生高处坠落，1人死亡",
            },
            story=f"{fatal.name}: fatal accident (1 death) reported",
        )
    )
    fatal_accident = len(steps) - 1
    decided = occurred + dt.timedelta(days=21)
    steps.append(
        _revocation(fatal, "fatal_accident", "有效期内发生1起生产安全死亡事故", decided, (-1,))
    )
    revoked_fatal = len(steps) - 1
    ordered = today - dt.timedelta(days=120)
    deadline = ordered + dt.timedelta(days=60)
    steps += [
        Step(
            "fj-yjt",
            "rectification.ordered",
            hazard.uscc,
            {
                "rectification_id": f"{hazard.region_code}-ZG-0042",
                "order_no": "应急责改〔2026〕42号",
                "kind": "hazard",
                "hazard_level": "major",
                "description": "液氯储罐区未设置气体泄漏报警装置",
                "ordered_on": ordered.isoformat(),
                "deadline": deadline.isoformat(),
            },
            story=f"{hazard.name}: major hazard, rectification ordered by {deadline}",
        ),
        Step(
            "fj-yjt",
            "rectification.overdue",
            hazard.uscc,
            {
                "rectification_id": f"{hazard.region_code}-ZG-0042",
                "deadline": deadline.isoformat(),
                "found_on": (deadline + dt.timedelta(days=3)).isoformat(),
            },
            story=f"{hazard.name}: deadline passed, hazard not rectified",
        ),
    ]
    steps.append(
        _revocation(
            hazard,
            "major_hazard_unrectified",
            "重大事故隐患未按期整改",
            deadline + dt.timedelta(days=10),
            (-1,),
        )
    )
    revoked_hazard = len(steps) - 1
    term_start = today - dt.timedelta(days=5)
    steps.append(
        Step(
            "fj-yjt",
            "listing.added",
            listed.uscc,
            {
                "listing_id": "FJ-SX-2026-0007",
                "list_type": "black",
                "deciding_agency": "fj-yjt",
                "decision_no": "闽应急失信〔2026〕7号",
                "decided_on": term_start.isoformat(),
                "term_start": term_start.isoformat(),
                "term_end": add_months(term_start, 36).isoformat(),
                "reason": "瞒报生产安全事故",
            },
            story=f"{listed.name}: entered on the black list for 3 years",
        )
    )
    steps += _seed_path(inspected, today)
    steps += _register_changes(renamed, ungraded[-1], today)  # [0] is the mischief's
    for position in (revoked_fatal, revoked_hazard):
        subject = steps[position].subject
        if position == revoked_fatal:  # the catalog's insurer measures answer accidents
            steps.append(
                Step(
                    "fj-picc",
                    "measure.applied",
                    subject,
                    {
                        "measure_code": "insurance.liability.ordinary_accident",
                        "applied_on": today.isoformat(),
                        "effect": {"premium_float": 0.1},
                        "note": "次年保费上浮10%",
                    },
                    story="insurer: premium float +10 % applied for the accident",
                    refers_to=fatal_accident,
                )
            )
        steps.append(
            Step(
                "fj-cib",
                "measure.applied",
                subject,
                {"measure_code": "bank.credit_review", "applied_on": today.isoformat()},
                story="bank: credit review flag applied",
                refers_to=position,
            )
        )
    return steps


def _seed_path(ent: Enterprise, today: dt.date) -> list[Step]:
    """闽安委〔2017〕1号 四（二）: an inspection finds the standardization system not running,
    the enterprise is ordered to rectify, the re-check fails, the grade is revoked citing it."""
    ordered = today - dt.timedelta(days=75)
    deadline = ordered + dt.timedelta(days=30)
    checked = deadline + dt.timedelta(days=5)
    order_id = f"{ent.region_code}-ZG-0107"
    steps = [
        Step(
            "fj-yjt-zf",
            "inspection.recorded",
            ent.uscc,
            {
                "inspection_id": f"{ent.region_code}-JC-0107",
                "kind": "unannounced",
                "inspected_on": ordered.isoformat(),
                "inspectors": ["FJ-INSP-0031", "FJ-INSP-0058"],
                "findings": {
                    "deducted_items": ["gbt33000.5.2", "gbt33000.5.5", "gbt33000.5.8"],
                    "system_running": False,
                    "safety_conditions_degraded": False,
                    "hazards_found": 4,
                },
            },
            story=f"{ent.name}: unannounced inspection (四不两直) finds the system not running",
        ),
        Step(
            "fj-yjt-zf",
            "rectification.ordered",
            ent.uscc,
            {
                "rectification_id": order_id,
                "order_no": "应急责改〔2026〕107号",
                "kind": "system_not_running",
                "description": "“四不两直”检查发现安全生产标准化管理体系未有效运行",
                "ordered_on": ordered.isoformat(),
                "deadline": deadline.isoformat(),
            },
            story=f"{ent.name}: ordered to rectify, citing the inspection",
            inspection=-1,
        ),
        Step(
            "fj-yjt-zf",
            "rectification.verified",
            ent.uscc,
            {
                "rectification_id": order_id,
                "verified_on": checked.isoformat(),
                "result": "failed",
                "verified_by": ["FJ-INSP-0031", "FJ-INSP-0058"],
            },
            story=f"{ent.name}: re-check FAILED (整改仍达不到要求)",
        ),
    ]
    steps.append(
        _revocation(
            ent,
            "system_not_running",
            "标准化体系未有效运行，整改复查仍不合格",
            checked + dt.timedelta(days=5),
            (-1,),
        )
    )
    return steps


def _register_changes(renamed: Enterprise, closed: Enterprise, today: dt.date) -> list[Step]:
    """定期核实 (四（二）): a change of name found by periodic verification, and a closure."""
    return [
        Step(
            "fj-yjt",
            "enterprise.updated",
            renamed.uscc,
            {
                "changed_on": (today - dt.timedelta(days=30)).isoformat(),
                "basis": "periodic_verification",
                "changes": {"name": renamed.name.replace("有限公司", "集团有限公司")},
            },
            story=f"{renamed.name}: renamed, found by periodic verification",
        ),
        Step(
            "fj-yjt",
            "enterprise.closed",
            closed.uscc,
            {
                "closed_on": (today - dt.timedelta(days=20)).isoformat(),
                "closure": "deregistered",
                "deciding_body": f"{CITIES[closed.region_code[:4] + '00']}市市场监督管理局",
            },
            story=f"{closed.name}: deregistered (注销)",
        ),
    ]


def _revocation(
    ent: Enterprise, code: str, reason: str, decided: dt.date, cites: tuple[int, ...]
) -> Step:
    """A revocation citing its cause: the story's steps `cites` (-1: the one before)."""
    return Step(
        "fj-yjt",
        "grade.revoked",
        ent.uscc,
        {
            "reason_code": code,
            "reason": reason,
            "decision_no": f"闽应急撤〔{decided.year}〕{ent.uscc[-4:]}号",
            "decided_on": decided.isoformat(),
            "reapply_after": add_months(decided, 12).isoformat(),
        },
        story=f"{ent.name}: grade REVOKED ({code}), citing its cause",
        cites=cites,
    )
