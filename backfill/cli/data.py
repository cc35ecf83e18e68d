"""`backfill data`: fill the raw tables with the configured pipeline's own loaders.

The subcommands come from the pipeline's plugin (`plugin:` in its pipeline.yaml, see
`backfill.cli.plugin`); the reference pipeline's are `data sample` (the synthetic league) and
`data import-nba DIR` (the real CSVs). The library itself knows no pipeline's data.
"""

from __future__ import annotations

import click

from backfill.cli.context import CliContext
from backfill.cli.plugin import PipelinePlugin, plugin_of


class _PipelineCommands(click.Group):
    """A group whose commands are the configured pipeline plugin's `data_commands`."""

    def _plugin(self, ctx: click.Context) -> tuple[str, PipelinePlugin]:
        obj = ctx.find_object(CliContext)
        if obj is None:  # parsed without running the group (help, a parse-only check): the defaults
            obj = CliContext.build(home=None, warehouse=None, redis_url=None, debug=False)
        spec = obj.spec(str(obj.pipeline_dir()))
        return str(spec.path), plugin_of(spec)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(c.name or "" for c in self._plugin(ctx)[1].data_commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where, plugin = self._plugin(ctx)
        command = plugin.data_command(cmd_name)
        if command is None and not ctx.resilient_parsing:
            known = ", ".join(sorted(c.name or "" for c in plugin.data_commands)) or "none"
            raise click.UsageError(f"no data command {cmd_name!r} in the pipeline at {where} (its plugin offers: "
                                   f"{known}); set BACKFILL_PIPELINE to a pipeline whose pipeline.yaml names a "
                                   "`plugin:` with it", ctx)
        return command


@click.group(cls=_PipelineCommands)
@click.pass_context
def data(ctx: click.Context) -> None:
    """Fill the raw tables with the pipeline's loaders (the reference pipeline: a synthetic sample
    league, or the real NBA CSVs)."""
    # Release the DuckDB file as soon as the load ends, so a caller in the same process can open it.
    if isinstance(ctx.obj, CliContext):
        ctx.call_on_close(ctx.obj.close)
