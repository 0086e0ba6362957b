#!/usr/bin/env bash
# The main table's background compute (issue 22): hours of CPU that outlive no session, so each session
# starts it first and hands its state back at the end. One command each way:
#
#   scripts/background.sh start     # a git worktree at HEAD (../attempt-bg-<sha>), two single-thread jobs:
#                                   #   with no source queued (the default), two main-table cells jobs
#                                   #   (cells, cells2), each claiming the next cell the other is not running
#                                   #   (CELL_WORKERS=1: one job of CELL_THREADS threads, default 2; 1 leaves
#                                   #   a core free for foreground work)
#   SOURCES="qqp" scripts/background.sh start   # train (or resume) these sources beside one cells job: the
#                                   #   cells that need no source prompt (CELL_METHODS) until every source the
#                                   #   table mixes is shipped and none is queued, then every method
#   scripts/background.sh status    # where each job is
#   scripts/background.sh relaunch  # start again a job that crashed (same arguments; it resumes)
#   scripts/background.sh fill      # a job that finished its queue leaves its core idle: start the cells job
#                                   #   there (those that need no source prompt), unless one already runs
#   scripts/background.sh stop      # stop both, stash their unfinished runs, and bring into this checkout
#                                   #   what is to commit: the cells file, the stashed states, and the
#                                   #   finished source runs (shipped here through this checkout's bar)
#   scripts/background.sh stop --at-checkpoint [MINUTES]   # the same, each cells job stopped as soon as its
#                                   #   cell writes its next checkpoint (every 100 steps) or finishes, within
#                                   #   MINUTES (default 15): the steps since the last checkpoint are not lost
#
# Why a worktree at a fixed commit: commits made while the jobs run must not change the code under them.
# Why two jobs of one thread: on two cores they finish more per hour than one job of two threads.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
SOURCES=${SOURCES-}  # none queued: every source the table mixes is shipped (squad last, on 2026-12-03)
SOURCES2=${SOURCES2:-}  # set: the second job trains these sources (in order) instead of main-table cells
CELL_METHODS=${CELL_METHODS:-prompt_tuning lora}
POINTER=$REPO/.background  # the worktree of the running jobs (git-ignored)
SOURCE_RESULTS=benchmarks/results/source_prompts
TABLE_RESULTS=benchmarks/results/main_table

start() {
    [[ -f $POINTER ]] && { echo "already started in $(cat "$POINTER"): run 'scripts/background.sh stop' first" >&2; exit 2; }
    local tree
    tree=$(realpath -m "$REPO/../attempt-bg-$(git rev-parse --short HEAD)")
    [[ -d $tree ]] || git worktree add --detach "$tree" HEAD >/dev/null 2>&1
    echo "$tree" >"$POINTER"
    local second=cells
    [[ -n $SOURCES2 ]] && second=sources2
    # what stop must stash and bring back, whatever the environment it runs in
    local first=sources
    [[ -z $SOURCES ]] && first=""  # no source queued: the cells jobs alone
    local workers=1
    [[ -z $first && -z $SOURCES2 ]] && workers=${CELL_WORKERS:-2}
    ((workers == 2)) && second="cells cells2"
    printf 'SOURCES="%s"\nSOURCES2="%s"\nJOBS="%s"\n' "$SOURCES" "$SOURCES2" "${first:+$first }$second" >"$tree/jobs.env"
    [[ -n $first ]] && launch "$tree" sources -m benchmarks.source_prompts --tasks $SOURCES --threads 1
    if [[ -n $SOURCES2 ]]; then
        launch "$tree" sources2 -m benchmarks.source_prompts --tasks $SOURCES2 --threads 1
        echo "second job: sources $SOURCES2"
    else
        local cells=(--without-sources --methods $CELL_METHODS)
        if sources_ready; then cells=(); fi  # every method, from the first cell missing
        # alone: two processes of one thread, each claiming its own cell (benchmarks/cell_parallel.py), or with
        # CELL_WORKERS=1 one of CELL_THREADS (default 2; 1 leaves a core for foreground work)
        local threads=1
        [[ -z $first && $workers == 1 ]] && threads=${CELL_THREADS:-2}
        for name in $second; do
            launch "$tree" "$name" -m benchmarks.main_table "${cells[@]}" --threads "$threads"
        done
        echo "cells jobs ($second): ${cells[*]:-cells of every method (every source the table mixes is shipped)}"
    fi
    echo "started in $tree; logs:$(printf " $tree/%s.log" $first $second)"
}

sources_ready() {  # whether the library holds every source the table mixes, none of them still queued in SOURCES
    (cd "$REPO" && PYTHONPATH="$REPO/src:$REPO" "$PY" -c '
import sys
from attempt.prompts.library import PromptLibrary
from benchmarks.main_table import LIBRARY, Options
library, queued = PromptLibrary(LIBRARY), set(sys.argv[1:])
sys.exit(0 if all(name in library and name not in queued for name in Options.sources) else 1)' $SOURCES $SOURCES2)
}

launch() {  # launch TREE NAME ARGS...: one detached job of ARGS' --threads, its pid in TREE/NAME.pid, ARGS in NAME.args
    local tree=$1 name=$2
    shift 2
    printf '%s\n' "$@" >"$tree/$name.args"
    local threads=1 previous=""
    for argument in "$@"; do [[ $previous == --threads ]] && threads=$argument; previous=$argument; done
    # exec: the subshell becomes the python process, so the pid recorded is the one `stop` must end
    (cd "$tree" && exec env OMP_NUM_THREADS="$threads" TQDM_DISABLE=1 PYTHONPATH="$tree/src:$tree" \
        nohup "$PY" "$@" >"$tree/$name.log" 2>&1) &
    echo $! >"$tree/$name.pid"
}

status() {
    local tree
    tree=$(cat "$POINTER")
    read_jobs "$tree"
    for name in $JOBS; do
        if kill -0 "$(cat "$tree/$name.pid")" 2>/dev/null; then state=running; else state=ended; fi
        echo "$name: $state; last: $(tr '\r' '\n' <"$tree/$name.log" | grep -v -e '^\s*$' -e 'Warning' -e 'warnings.warn' | tail -1 | cut -c1-160)"
    done
    local claim run  # the cells training now (claimed by a running job): their logs' last lines
    for claim in "$tree/$TABLE_RESULTS"/runs/*/cells*/*/*/s*/claim.json; do
        [[ -f $claim ]] || continue
        kill -0 "$(grep -o '[0-9]\+' "$claim" | head -1)" 2>/dev/null || continue
        run=$(dirname "$claim")
        echo "cell ${run#"$tree/$TABLE_RESULTS/runs/"}: $(tail -1 "$run/metrics.jsonl" 2>/dev/null | cut -c1-120)"
    done
    return 0
}

relaunch() {  # start again, with the same arguments, each job of the running worktree that has ended (crashed)
    local tree
    tree=$(cat "$POINTER")
    read_jobs "$tree"
    for name in $JOBS; do
        kill -0 "$(cat "$tree/$name.pid")" 2>/dev/null && continue
        [[ -f $tree/$name.args ]] || { echo "$name: no $name.args (started before relaunch existed)" >&2; continue; }
        mv "$tree/$name.log" "$tree/$name.log.$(date +%s)"  # the crash's log stays beside the new one
        mapfile -t args <"$tree/$name.args"
        launch "$tree" "$name" "${args[@]}"
        echo "$name: relaunched (${args[*]}); it resumes from its checkpoint"
    done
}

fill() {  # give the core of a finished job to the main-table cells that need no source prompt
    local tree name ended="" known=no
    tree=$(cat "$POINTER")
    read_jobs "$tree"
    [[ " $JOBS " == *" cells "* ]] && known=yes  # started by `start` or an earlier fill
    if [[ $known == yes ]] && kill -0 "$(cat "$tree/cells.pid")" 2>/dev/null; then
        echo "the cells job runs already: nothing to fill" >&2; exit 2
    fi
    for name in $JOBS; do
        kill -0 "$(cat "$tree/$name.pid")" 2>/dev/null || ended=$name
    done
    [[ -n $ended ]] || { echo "every job runs: no core to fill" >&2; exit 2; }
    # without sources: the worktree's library is that of its commit, without the sources trained since
    [[ -f $tree/cells.log ]] && mv "$tree/cells.log" "$tree/cells.log.$(date +%s)"
    launch "$tree" cells -m benchmarks.main_table --without-sources --methods $CELL_METHODS --threads 1
    [[ $known == yes ]] || sed -i "s/^JOBS=\"\(.*\)\"$/JOBS=\"\1 cells\"/" "$tree/jobs.env"
    echo "cells job started on the core $ended left (methods $CELL_METHODS); log: $tree/cells.log"
}

read_jobs() {  # read_jobs TREE: the SOURCES, SOURCES2 and JOBS `start` ran there (before jobs.env: the defaults)
    JOBS="sources cells"
    [[ -f $1/jobs.env ]] && source "$1/jobs.env"
    return 0
}

at_checkpoint() {  # at_checkpoint TREE MINUTES: stop each cells job once its cell has checkpointed or finished
    local tree=$1 deadline=$(($(date +%s) + 60 * $2)) name pid claim run
    declare -A folder before
    for name in $JOBS; do
        pid=$(cat "$tree/$name.pid")
        kill -0 "$pid" 2>/dev/null || continue
        claim=$(grep -lx "  \"pid\": $pid" "$tree/$TABLE_RESULTS"/runs/*/cells*/*/*/s*/claim.json 2>/dev/null | head -1)
        [[ -n $claim ]] || continue  # not a cells job, or between cells: stopped with the others
        run=$(dirname "$claim")
        folder[$name]=$run
        before[$name]=$(stat -c %Y "$run/checkpoint" 2>/dev/null || echo 0)
        echo "$name: waiting for ${run#"$tree/$TABLE_RESULTS/runs/"} to checkpoint"
    done
    while ((${#folder[@]})) && (($(date +%s) < deadline)); do
        sleep 10
        for name in "${!folder[@]}"; do
            run=${folder[$name]} pid=$(cat "$tree/$name.pid")
            if [[ ! -f $run/claim.json ]] || (($(stat -c %Y "$run/checkpoint" 2>/dev/null || echo 0) > ${before[$name]})); then
                kill "$pid" 2>/dev/null || true  # its newest work is on disk: nothing lost
                echo "$name: stopped at a checkpoint (or its cell finished)"
                unset "folder[$name]"
            fi
        done
    done
    ((${#folder[@]} == 0)) || echo "no checkpoint within $2 min: ${!folder[*]} stopped anyway"
}

stop() {
    local tree
    tree=$(cat "$POINTER")
    read_jobs "$tree"
    [[ ${1:-} == --at-checkpoint ]] && at_checkpoint "$tree" "${2:-15}"
    for name in $JOBS; do
        kill "$(cat "$tree/$name.pid")" 2>/dev/null || true
    done
    for name in $JOBS; do  # stash only once both have ended: a running job would go on writing
        while kill -0 "$(cat "$tree/$name.pid")" 2>/dev/null; do sleep 1; done
    done
    if [[ -n "$SOURCES$SOURCES2" ]]; then
        (cd "$tree" && PYTHONPATH="$tree/src:$tree" "$PY" -m benchmarks.source_prompts --stash --tasks $SOURCES $SOURCES2)
    fi
    (cd "$tree" && PYTHONPATH="$tree/src:$tree" "$PY" -m benchmarks.main_table --stash)
    rm -rf "${REPO:?}/$SOURCE_RESULTS/state" "${REPO:?}/$TABLE_RESULTS/state"
    cp -r "$tree/$SOURCE_RESULTS/state" "$REPO/$SOURCE_RESULTS/" 2>/dev/null || true
    cp -r "$tree/$TABLE_RESULTS/state" "$REPO/$TABLE_RESULTS/" 2>/dev/null || true
    cp "$tree/$TABLE_RESULTS"/cells-*.jsonl "$REPO/$TABLE_RESULTS/"
    local finished=()
    for task in $SOURCES $SOURCES2; do
        local run=$SOURCE_RESULTS/runs/smollm2-135m-instruct/$task
        if [[ -f $tree/$run/results.json ]]; then
            mkdir -p "$REPO/$run" && cp -r "$tree/$run/." "$REPO/$run/"
            finished+=("$task")
        fi
    done
    if ((${#finished[@]})); then  # finished runs are read back, not trained; the bar here decides shipping
        "$PY" -m benchmarks.source_prompts --tasks "${finished[@]}" --threads 2
    fi
    "$PY" -m benchmarks.main_table --report-only >/dev/null
    rm "$POINTER"
    echo "stopped; to commit: git status -- benchmarks/results prompts  (the worktree $tree stays: delete it with"
    echo "'git worktree remove --force $tree' once its state is committed)"
}

case ${1:-} in
    start | status | relaunch | fill) "$1" ;;
    stop) stop "${@:2}" ;;
    *) echo "usage: scripts/background.sh start|status|stop|relaunch|fill" >&2; exit 2 ;;
esac
