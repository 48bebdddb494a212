#!/usr/bin/env python3
"""What our CUDA kernels compile to, without a GPU: registers, instructions, special-function and memory
instructions per kernel, for one revision or as the change between two.

  python3 bench/kernel_sass.py                          # this tree's kernels (src/*/*_kernel.cu), sm_90
  python3 bench/kernel_sass.py --base HEAD~1            # what changed against another revision
  python3 bench/kernel_sass.py --filter bias_gelu src/ops/bias_gelu_kernel.cu

A kernel's instruction count is a proxy, not a timing: it flags a change that makes an elementwise kernel
issue-bound (GELU's and the cross-entropy's were, at ~34 instructions a value, docs/kernels.md) or that adds
registers (occupancy), so a session without a device can see what a kernel change costs before a GPU measures
it. Needs nvcc ($NVCC, else the one on PATH) and cuobjdump (the toolkit's, or the copy Triton ships beside
LibTorch's Python package).
"""
import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOURCES = ["src/ops/*_kernel.cu", "src/optim/*_kernel.cu", "src/zero/*_kernel.cu"]
# The flags CMake's RelWithDebInfo build gives our kernels (src/torch_libraries.cmake), for one architecture.
NVCC_FLAGS = ["--expt-relaxed-constexpr", "--expt-extended-lambda", "-O2", "-DNDEBUG", "-std=c++17"]
COUNTED = ("MUFU", "LDG", "LD", "STG", "ST", "LDS", "STS", "BAR", "SHFL")


def find_cuobjdump():
    found = shutil.which("cuobjdump")
    if found:
        return found
    try:
        import triton  # noqa: PLC0415 (optional: only for its bundled binary)
        bundled = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
        if os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    sys.exit("kernel_sass: no cuobjdump (neither on PATH nor in Triton's package)")


def short_name(mangled):
    """The demangled kernel name without its namespaces and parameter list, template arguments kept."""
    name = subprocess.run(["c++filt", mangled], capture_output=True, text=True).stdout.strip() or mangled
    name = re.sub(r"\(anonymous namespace\)::", "", name)
    name = re.sub(r"deepspeed::(\w+::)*", "", name)
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # drop the parameter list: the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    return name[:cut].replace("__nv_bfloat16", "bf16").replace("__half", "fp16")


def registers_by_kernel(usage):
    """cuobjdump -res-usage's REG per function."""
    registers, current = {}, None
    for line in usage.splitlines():
        m = re.search(r"Function (\S+):", line)
        current = m.group(1) if m else current
        m = re.search(r"REG:(\d+)", line)
        if m and current:
            registers[current] = int(m.group(1))
    return registers


def counts_by_kernel(sass):
    """cuobjdump -sass's instructions per function: all but NOPs, and those of COUNTED by opcode."""
    result, current = {}, None
    for line in sass.splitlines():
        m = re.match(r"\s+Function : (\S+)", line)
        if m:
            current = m.group(1)
            result[current] = collections.Counter()
            continue
        m = re.match(r"\s+/\*[0-9a-f]{4}\*/\s+(.*?);", line)
        if not (m and current):
            continue
        tokens = m.group(1).split()
        op = tokens[1] if tokens[0].startswith("@") else tokens[0]  # past a predicate
        if op == "NOP":
            continue
        base = op.split(".")[0]
        result[current]["instructions"] += 1
        if base in COUNTED:
            result[current][base] += 1
    return result


def kernels_of(source, root, arch, cuobjdump, workdir):
    cubin = os.path.join(workdir, os.path.basename(source) + ".cubin")
    cmd = [os.environ.get("NVCC", "nvcc"), f"-I{root}", f"-I{os.path.join(root, 'include')}", *NVCC_FLAGS,
           f"-arch={arch}", "-cubin", "-o", cubin, os.path.join(root, source)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    if built.returncode != 0:
        sys.exit(f"kernel_sass: nvcc failed on {source}:\n{built.stderr[-2000:]}")
    sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True).stdout
    usage = subprocess.run([cuobjdump, "-res-usage", cubin], capture_output=True, text=True).stdout
    registers = registers_by_kernel(usage)
    return {k: (registers.get(k, 0), v) for k, v in counts_by_kernel(sass).items()}


def collect(root, sources, arch, cuobjdump, pattern):
    out = {}
    with tempfile.TemporaryDirectory() as workdir:
        for source in sources:
            for mangled, (regs, counts) in kernels_of(source, root, arch, cuobjdump, workdir).items():
                name = short_name(mangled)
                if pattern and not re.search(pattern, name):
                    continue
                out[(source, name)] = (regs, counts)
    return out


def checkout(rev, workdir):
    """The tree at `rev`, exported (sources only) into workdir."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "src", "include"], capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"kernel_sass: git archive {rev} failed: {archive.stderr.decode()[-500:]}")
    subprocess.run(["tar", "-x", "-C", workdir], input=archive.stdout, check=True)
    return workdir


def row(counts):
    return [counts["instructions"]] + [counts[c] for c in COUNTED]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", nargs="*", help="kernel sources, relative to the repository (default: all)")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--filter", default="", help="regular expression on the kernel's short name")
    ap.add_argument("--base", help="a git revision: print each kernel's change against it")
    a = ap.parse_args()
    cuobjdump = find_cuobjdump()
    sources = a.sources or sorted(os.path.relpath(p, ROOT) for g in DEFAULT_SOURCES
                                  for p in glob.glob(os.path.join(ROOT, g)))
    now = collect(ROOT, sources, a.arch, cuobjdump, a.filter)
    header = ["registers", "instructions"] + list(COUNTED)
    if not a.base:
        print(f"| source | kernel ({a.arch}) | " + " | ".join(header) + " |")
        print("|---|---|" + "---|" * len(header))
        for (source, name), (regs, counts) in sorted(now.items()):
            print(f"| {os.path.basename(source)} | `{name}` | {regs} | " + " | ".join(map(str, row(counts))) + " |")
        return
    with tempfile.TemporaryDirectory() as old_root:
        existing = [s for s in sources if subprocess.run(["git", "-C", ROOT, "cat-file", "-e", f"{a.base}:{s}"],
                                                         capture_output=True).returncode == 0]
        before = collect(checkout(a.base, old_root), existing, a.arch, cuobjdump, a.filter)
    print(f"| source | kernel ({a.arch}) | registers | instructions | changed counts (now − {a.base}) |")
    print("|---|---|---|---|---|")
    changed = 0
    for key in sorted(set(now) | set(before)):
        source, name = key
        if key not in before or key not in now:
            what = "new" if key not in before else "removed"
            regs, counts = now.get(key) or before[key]
            print(f"| {os.path.basename(source)} | `{name}` | {regs} | {counts['instructions']} | {what} |")
            changed += 1
            continue
        (r0, c0), (r1, c1) = before[key], now[key]
        deltas = {k: c1[k] - c0[k] for k in set(c0) | set(c1) if c1[k] != c0[k]}
        if r0 == r1 and not deltas:
            continue
        changed += 1
        detail = ", ".join(f"{k} {v:+d}" for k, v in sorted(deltas.items())) or "—"
        print(f"| {os.path.basename(source)} | `{name}` | {r0} → {r1} | {c0['instructions']} → "
              f"{c1['instructions']} | {detail} |")
    print(f"\n{changed} of {len(now)} kernels changed against {a.base}.")


if __name__ == "__main__":
    main()
