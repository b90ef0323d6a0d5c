"""The PNG: requests/s and p99 latency against connections, one line per throughput setup
(medians), drawn by gnuplot."""
import os
import subprocess

import harness as h


def draw(path, throughput, title):
    setups, medians, names = throughput["setups"], throughput["medians"], throughput["names"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = os.path.splitext(path)[0] + ".dat"
    with open(data, "w") as f:
        for key in setups:
            f.write(f"# {names[key]}\n# connections req/s p99_ms\n")
            for c in sorted(medians[key]):
                m = medians[key][c]
                f.write(f"{c} {m['rps']:.1f} {m['p99']:.4f}\n")
            f.write("\n\n")  # a gnuplot data block per setup
    conns = sorted({c for key in setups for c in medians[key]})
    xtics = ", ".join(str(c) for c in conns)

    def plots(column):
        return ", \\\n  ".join(f"'{data}' index {i} using 1:{column} with linespoints lw 2 pt 7 title '{names[k]}'"
                               for i, k in enumerate(setups))
    script = f"""
set output '{path}'
set termoption noenhanced
set multiplot layout 1,2 title '{title}'
set logscale x
set xtics ({xtics})
set xrange [{conns[0] * 0.8}:{conns[-1] * 1.25}]
unset xlabel
set grid
set key outside below center horizontal maxrows 4 font ',9'
set title 'requests/s against connections'
set ylabel 'requests/s (median)'
set yrange [0:*]
plot {plots(2)}
set title 'p99 latency against connections'
set ylabel 'p99 latency, ms (median, log scale)'
set logscale y
set yrange [*:*]
plot {plots(3)}
unset multiplot
"""
    for terminal in ("pngcairo size 1500,700 font 'DejaVu Sans,10'", "png size 1500,700"):
        run = subprocess.run([h.tool("gnuplot")], input=f"set terminal {terminal}\n" + script, text=True,
                             capture_output=True)
        if run.returncode == 0 and os.path.exists(path) and os.path.getsize(path) > 0:
            return path
    raise h.SetupError(f"gnuplot could not draw {path}:\n{run.stderr}")
