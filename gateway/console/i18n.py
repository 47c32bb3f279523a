"""The console's words in Chinese (the default) and English, and how it shows times: in
Fujian (UTC+8, contracts.dates.LOCAL) whatever the server's or the browser's zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from contracts.dates import LOCAL

LANGUAGES = ("zh", "en")
DEFAULT = "zh"

# English text -> Chinese. A phrase missing here shows in English in both languages.
ZH: dict[str, str] = {
    "Gateway console": "数据交换网关控制台",
    "Overview": "概览",
    "Ledgers": "台账",
    "Enterprise": "企业",
    "Deliveries": "投递",
    "Feedback": "反馈",
    "Agencies": "机构",
    "Log": "日志",
    "My subscriptions": "我的订阅",
    "Agency portal": "机构门户",
    "Sign out": "退出",
    "Sign in": "登录",
    "Sign in as": "登录身份",
    "Signed in as": "当前身份",
    "Session ends": "会话到期",
    "Continue": "继续",
    "Console sign-in": "控制台登录",
    "Ask the operator for a login link: gateway console login AGENCY": (
        "请向运维人员索取登录链接：gateway console login 机构编号"
    ),
    "Log size": "日志条目数",
    "Last checkpoint": "最新检查点",
    "age": "时长",
    "Last cosignature": "最新见证签名",
    "none": "无",
    "Publishes today": "今日发布",
    "by type": "按类型",
    "Deliveries by status": "投递状态",
    "Failing endpoints": "失败的接收端",
    "Dead letters": "死信",
    "Parked documents": "搁置文档",
    "Outbox lag": "发件箱延迟",
    "Overdue feedback": "逾期反馈",
    "Awaiting feedback": "待反馈",
    "seconds": "秒",
    "City": "地市",
    "District": "区县",
    "Region": "地区",
    "Industry": "行业",
    "Grade": "等级",
    "Status": "状态",
    "Total": "合计",
    "Count": "数量",
    "Ledger": "台账",
    "basic": "基础台账",
    "required": "应达标台账",
    "achieved": "达标台账",
    "Filter": "筛选",
    "Day": "日期",
    "Export CSV": "导出 CSV",
    "All": "全部",
    "By grade": "按等级",
    "By industry": "按行业",
    "Enterprises": "企业",
    "Search": "查询",
    "Unified social credit code": "统一社会信用代码",
    "Name": "名称",
    "Grade timeline": "等级时间线",
    "Ledger history": "台账变更记录",
    "List entries": "名单记录",
    "Measures in force": "在用措施",
    "Messages": "消息",
    "Access records": "访问记录",
    "Delivery state": "投递状态",
    "Subscription": "订阅",
    "Agency": "机构",
    "Endpoint": "接收地址",
    "Success rate (24 h)": "成功率（24 小时）",
    "Attempts (24 h)": "尝试次数（24 小时）",
    "Mean latency": "平均延迟",
    "Circuit breaker": "熔断器",
    "open until": "断开至",
    "closed": "闭合",
    "Last error": "最近错误",
    "Next attempt": "下次尝试",
    "Failing deliveries": "失败投递",
    "Replay": "重放",
    "Skip": "跳过",
    "Reason": "原因",
    "I confirm": "我确认",
    "Attempts": "尝试次数",
    "Message": "消息",
    "Type": "类型",
    "Log index": "日志序号",
    "Decision": "决定",
    "Deadline": "期限",
    "Overdue": "逾期",
    "Awaiting": "待反馈",
    "Applied": "已反馈",
    "Decisions awaiting measures": "待反馈的决定",
    "Keys": "密钥",
    "Suite": "算法",
    "Valid from": "生效",
    "Valid to": "失效",
    "Rights": "权限",
    "Scopes": "授权范围",
    "Rate limit": "速率限制",
    "default": "默认",
    "Grant": "授予",
    "Revoke": "撤销",
    "Fields (comma-separated; empty: all)": "字段（逗号分隔；留空为全部）",
    "Action": "操作",
    "Contract": "合约",
    "Roles": "角色",
    "Checkpoints": "检查点",
    "Witnesses": "见证方",
    "Cosigned size": "已见证大小",
    "Verify an evidence bundle": "核验证据包",
    "Evidence bundle (JSON)": "证据包（JSON）",
    "Publisher's public JWK (JSON)": "发布方公钥 JWK（JSON）",
    "Verify": "核验",
    "Check": "检查项",
    "Result": "结果",
    "Detail": "详情",
    "Size": "大小",
    "Root": "根哈希",
    "Signed at": "签名时间",
    "Create a subscription": "新建订阅",
    "Types": "类型",
    "View": "视图",
    "Push URL (empty: pull only)": "推送地址（留空为仅拉取）",
    "Region prefix": "地区前缀",
    "Create": "创建",
    "Pause": "暂停",
    "Resume": "恢复",
    "Rotate the HMAC secret": "轮换 HMAC 密钥",
    "Webhook public key (v1a)": "Webhook 公钥（v1a）",
    "HMAC secret, shown once": "HMAC 密钥（仅显示一次）",
    "Pull-feed position": "拉取位置",
    "acknowledged up to log index": "已确认至日志序号",
    "Feedback owed": "应反馈",
    "Recent deliveries": "最近投递",
    "Nothing here.": "暂无内容。",
    "Refused": "已拒绝",
    "Back": "返回",
    "Done": "完成",
    "pending": "待投递",
    "delivered": "已投递",
    "dead": "死信",
    "parked": "搁置",
    "skipped": "已跳过",
    "active": "启用",
    "paused": "暂停",
    "disabled": "停用",
    "yes": "是",
    "no": "否",
    "ok": "通过",
    "failed": "未通过",
    "Language": "语言",
    "Chart": "图表",
    "Table": "表格",
    "Per agency": "按机构",
    "Replayed": "已重放",
    "Skipped": "已跳过",
    "replayed deliveries": "条投递已重新排队",
    "skipped deliveries": "条投递已跳过",
    "This page could not be shown": "无法显示此页面",
    "Signed out.": "已退出。",
}


def translator(lang: str) -> Callable[[str], str]:
    if lang == "en":
        return lambda text: text
    return lambda text: ZH.get(text, text)


def local_time(moment: dt.datetime | str | None) -> str:
    """`moment` (or its ISO 8601 text) as Fujian wall-clock time to the second; empty for
    none."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None, lang: str) -> str:
    """A short, readable age: 42 s, 7 min, 3 h, 2 d (秒/分钟/小时/天 in Chinese)."""
    if seconds is None:
        return "—"
    units = (("d", "天", 86400), ("h", "小时", 3600), ("min", "分钟", 60))
    for en, zh, size in units:
        if seconds >= size:
            value = seconds / size
            shown = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{shown} {en}" if lang == "en" else f"{shown} {zh}"
    return f"{seconds:.0f} s" if lang == "en" else f"{seconds:.0f} 秒"
