#!/usr/bin/env bash
# Mutation testing of the decision modules with cargo-mutants (`make mutants`; CONTRIBUTING.md).
#
#   MUTANTS_FILES="src/plan.rs src/cron.rs" tests/mutants.sh [cargo-mutants args, e.g. --in-diff x.diff]
#
# The tree is copied to $MUTANTS_DIR/tree-<n>, one copy per job, and each copy keeps its own
# target/ between runs, so only the first run builds the dependencies; the developer's tree and
# target/ are never built in or changed. Jobs split the mutants (cargo-mutants --shard) and run
# in parallel, niced. --workspace: without it cargo-mutants mutates only the root package and
# silently skips the files of crates/ that MUTANTS_FILES names. Prints the score per file and every missed mutant; exits non-zero when the
# score, caught / (caught + missed) with timeouts counted as caught, is below $MUTANTS_MIN percent.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=27.1.0 # pinned: mutant names and counts change between releases
read -r -a files <<<"${MUTANTS_FILES:?set MUTANTS_FILES to the files to mutate}"
min=${MUTANTS_MIN:-95}
jobs=${MUTANTS_JOBS:-2}
dir=$(realpath -m "${MUTANTS_DIR:-$PWD/target/mutants}") # absolute: copies are made from other dirs
args=("$@")
# A new copy starts from the developer's compiled dependencies (read, never written).
seed=${CARGO_TARGET_DIR:-$PWD/target}/debug
# Each copy builds into its own target/: a shared one would let two jobs overwrite each other's
# test binary (its name does not depend on the copy's path).
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR

# With --in-diff, a diff that touches none of the files has nothing to mutate: skip the builds.
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
  --in-diff | -D) diff=${args[i + 1]:-} ;;
  --in-diff=*) diff=${args[i]#--in-diff=} ;;
  esac
done
if [[ -n ${diff:-} ]]; then
  touched=$(sed -n 's|^+++ b/||p' "$diff" | sort -u)
  if ! grep -qxF -f <(printf '%s\n' "${files[@]}") <<<"$touched"; then
    echo "mutants: the diff touches none of ${files[*]}; nothing to test"
    exit 0
  fi
fi

if [[ $(cargo mutants --version 2>/dev/null) != "cargo-mutants $VERSION" ]]; then
  cargo install cargo-mutants --locked --version "$VERSION"
fi

# A new copy's target/ starts with the dependencies compiled in the seed: their artifacts only,
# never the workspace's own crates, test binaries or incremental caches (most of a target dir's
# size, rebuilt by the first run anyway). A shared CI cache that has grown over many runs once
# filled the disk when it was copied whole, once per job; the copy is skipped, and the
# dependencies built again, when it would use more than a quarter of the free space.
own='^(lib)?(apitoken[-_](operator|verify|bench)|crdgen|e2e|faults|crd_removal|argocd|fuzz|reload)[-_]'
seed_target() {
  local dest=$1 list need free
  list=$(mktemp)
  (cd "$seed" && for f in deps/* build/* .fingerprint/*; do
    [[ -e $f && ! ${f#*/} =~ $own ]] || continue
    printf '%s\0' "$f"
  done) >"$list"
  need=$(cd "$seed" && du -sck --files0-from="$list" | tail -1 | cut -f1)
  free=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
  if ((need * 4 > free)); then
    echo "mutants: ${need} KiB of compiled dependencies, ${free} KiB free: building them again instead"
  else
    mkdir -p "$dest" && (cd "$seed" && xargs -0 -r cp -a --parents -t "$dest" <"$list") # -a: times for cargo
  fi
  rm -f "$list"
}

# Copies a file only when its content differs, so unchanged files keep their times and the copy's
# build stays warm; a copied file gets the current time, newer than any build of a mutant.
sync_tree() {
  local dest=$1 f
  mkdir -p "$dest"
  [[ -d $dest/target || ! -d $seed ]] || seed_target "$dest/target/debug"
  (cd "$dest" && find . -path ./target -prune -o -type f -print0) |
    while IFS= read -r -d '' f; do [[ -f $f ]] || rm -f "$dest/$f"; done
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      [[ -f $f ]] || continue
      cmp -s "$f" "$dest/$f" || { mkdir -p "$dest/$(dirname "$f")" && cp "$f" "$dest/$f"; }
    done
}

mkdir -p "$dir"
exec 9>"$dir/lock"
flock -n 9 || { echo "mutants: another run is using $dir" >&2; exit 1; }

file_args=()
for f in "${files[@]}"; do file_args+=(--file "$f"); done
start=$SECONDS
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
rm -rf "$dir"/out-*
for ((k = 0; k < jobs; k++)); do
  sync_tree "$dir/tree-$k"
  nice -n "${MUTANTS_NICE:-10}" cargo mutants --in-place --dir "$dir/tree-$k" --output "$dir/out-$k" \
    --shard "$k/$jobs" --sharding round-robin --colors never --no-times --workspace "${file_args[@]}" "${args[@]}" \
    >"$dir/out-$k.log" 2>&1 &
  pids+=($!)
done
echo "mutants: ${#files[@]} files, $jobs jobs; progress in $dir/out-*.log"

report() {
  python3 - "$min" "$@" <<'EOF'
import json, sys
from collections import defaultdict
minimum, outputs = float(sys.argv[1]), sys.argv[2:]
count = defaultdict(lambda: defaultdict(int))
missed, baseline_failed = [], False
for out in outputs:
    try:
        outcomes = json.load(open(f"{out}/mutants.out/outcomes.json"))["outcomes"]
    except FileNotFoundError:
        continue
    for o in outcomes:
        if o["scenario"] == "Baseline":
            baseline_failed |= o["summary"] != "Success"
            continue
        mutant = o["scenario"]["Mutant"]
        count[mutant["file"]][o["summary"]] += 1
        if o["summary"] == "MissedMutant":
            missed.append(mutant["name"])
if baseline_failed:
    print("mutants: the unmutated tree fails its tests or does not build; see the logs")
    sys.exit(1)
total = defaultdict(int)
print(f"{'file':<24}{'caught':>8}{'timeout':>9}{'missed':>8}{'unviable':>10}{'score':>9}")
def row(name, c):
    viable = c["CaughtMutant"] + c["Timeout"] + c["MissedMutant"]
    score = 100.0 * (viable - c["MissedMutant"]) / viable if viable else 100.0
    print(f"{name:<24}{c['CaughtMutant']:>8}{c['Timeout']:>9}{c['MissedMutant']:>8}{c['Unviable']:>10}{score:>8.1f}%")
    return score
for name in sorted(count):
    row(name, count[name])
    for k, v in count[name].items():
        total[k] += v
score = row("total", total)
for name in sorted(missed, key=lambda n: [int(p) if p.isdigit() else p for p in n.split(":")[:3]]):
    print(f"missed: {name}")
if score < minimum:
    print(f"mutants: score {score:.1f}% is below {minimum:g}%")
    sys.exit(1)
EOF
}

rc=0
for pid in "${pids[@]}"; do
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    if ((SECONDS - ${said:=$start} >= 60)); then
      said=$SECONDS
      tested=$(cat "$dir"/out-*/mutants.out/{caught,missed,timeout,unviable}.txt 2>/dev/null | wc -l)
      echo "mutants: $tested tested after $(((SECONDS - start) / 60)) min"
    fi
  done
  # cargo-mutants: 0 all caught, 2 missed, 3 timeouts; anything else means it could not run.
  wait "$pid" || case $? in 2 | 3) ;; *) rc=1 ;; esac
done
if ((rc)); then
  tail -n 20 "$dir"/out-*.log
  echo "mutants: cargo-mutants failed; logs in $dir/out-*.log and $dir/out-*/mutants.out/log" >&2
  exit 1
fi
echo "mutants: cargo-mutants $VERSION, $(((SECONDS - start) / 60)) min; details in $dir/out-*/mutants.out"
report "$dir"/out-*/
