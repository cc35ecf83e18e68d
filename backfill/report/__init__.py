"""`backfill report`: the execution log of a run or a campaign, as Markdown, JSON and HTML with charts."""

from backfill.report.collect import collect_campaign, runs_since
from backfill.report.html import render_html
from backfill.report.markdown import render_markdown

__all__ = ["collect_campaign", "render_html", "render_markdown", "runs_since"]
