"""Chinese labels the receivers' systems show: revocation reasons, list names, grade levels,
removal reasons (the 信用中国 / credit disclosure records name things in Chinese)."""

from __future__ import annotations

REVOCATION_REASONS = {
    "fatal_accident": "发生生产安全死亡事故",
    "major_hazard_unrectified": "重大事故隐患未按期整改",
    "safety_conditions_degraded": "安全生产条件降低，经整改仍达不到要求",
    "system_not_running": "安全生产标准化管理体系未有效运行，经整改仍达不到要求",
    "serious_dishonesty": "被列入安全生产严重失信主体名单",
    "fraudulent_application": "申请材料弄虚作假",
    "concealed_accident": "瞒报、谎报生产安全事故",
    "licence_revoked": "安全生产许可证被吊销",
    "other": "其他",
}
LISTS = {
    "black": "安全生产严重失信主体名单",
    "red": "安全生产守信红名单",
    "focus": "安全生产重点关注名单",
}
LEVELS = {"1": "一级", "2": "二级", "3": "三级", "small_micro": "小微企业"}
REMOVAL_REASONS = {
    "term_ended": "管理期限届满移出",
    "early_removal": "信用修复提前移出",
    "repealed": "认定决定被撤销",
}
CLOSURES = {"deregistered": "注销", "licence_revoked": "吊销营业执照"}
GRADE_CATEGORY = "安全生产标准化等级"
INSPECTION_CATEGORY = "安全生产执法检查结果"
INSPECTION_KINDS = {
    "random_draw": "双随机抽查",
    "unannounced": "四不两直检查",
    "special_campaign": "专项检查",
    "complaint": "举报投诉核查",
}
