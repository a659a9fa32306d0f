"""What ``aisec assess`` and ``aisec demo`` print when a run ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aisec.core.run import Run


def print_summary(run: Run) -> None:
    """Each check's headline numbers and warnings on the console, then where the report is."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for r in run.results:
        if r.check == "robustness":
            s = r.summary
            console.print(
                f"[bold]{run.target.spec.name}[/] on [bold]{run.data.info.name}[/]: clean accuracy "
                f"{s['clean_accuracy']:.3f} ({s['clean_ci']['low']:.3f}–{s['clean_ci']['high']:.3f}, n={s['samples']})"
            )
            t = Table(title="robustness")
            for col in ("attack", "norm", "eps", "robust acc", "95% CI", "success", "SAFAIR Δ", "median ‖δ‖"):
                t.add_column(col, justify="right")
            for c in s["curves"]:
                for p in c["points"]:
                    t.add_row(c["attack"] + (" (t)" if c["targeted"] else ""), c["norm"], f"{p['eps']:g}",
                              f"{p['robust_accuracy']:.3f}", f"{p['ci']['low']:.3f}–{p['ci']['high']:.3f}",
                              f"{p['success_rate']:.3f}", f"{p['safair_delta']:.3f}",
                              f"{p['median_distance']:.4g}")
            console.print(t)
            if s.get("clever"):
                for norm, c in s["clever"].items():
                    console.print(
                        f"CLEVER-u ({norm}): median {c['median']:.4g}, min {c['min']:.4g}, max {c['max']:.4g}"
                    )
        elif r.check == "explainability":
            fa = r.summary.get("faithfulness", {})
            for kind in ("deletion", "insertion"):
                v = fa.get(kind)
                if isinstance(v, dict) and "mean" in v:
                    ci = v["ci"]
                    console.print(f"explainability faithfulness ({kind}): {v['mean']:.3f} "
                                  f"({ci['low']:.3f}–{ci['high']:.3f}); 0.5 = no better than random")
        elif r.check == "poisoning":
            s = r.summary
            console.print(f"poisoning {s['attack']} ({s['mode']}): resilience {s['resilience']:.3f}; ASR by rate "
                          + ", ".join(f"{100 * p['rate']:g}%: {p['asr']:.2f}" for p in s["points"])
                          + f"; clean accuracy {min(p['clean_accuracy'] for p in s['points']):.3f}"
                          f"–{max(p['clean_accuracy'] for p in s['points']):.3f}")
        elif r.check == "backdoor":
            for d in r.summary["methods"]:
                verdict = f"suspects class(es) {d['suspected']}" if d["alarm"] else "no alarm"
                flagged = "" if d["method"] == "neural-cleanse" else f", {d['flagged_count']} samples flagged"
                console.print(f"backdoor {d['method']}: {verdict} (max anomaly index "
                              f"{max(d['anomaly_index']):.2f}, threshold {d['threshold']:g}{flagged})")
        else:
            for m in r.measurements:
                ci = f" ({m.interval.low:.3f}–{m.interval.high:.3f})" if m.interval else ""
                console.print(f"{m.metric} {m.parameters or ''}: {m.value:.4g}{ci}")
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {w}")
    if run.out:
        console.print(f"report: {run.out / 'report.html'}   evidence: {run.out / 'evidence.jsonl'}")
