#!/usr/bin/env bash
# Tune a command-line trainer through ask/tell: any program that takes its
# hyperparameters as flags and prints one line per epoch can be a stagetune worker.
#
#   examples/ask_tell.sh [STORAGE] [TRIALS] [EPOCHS]
#
# Run it again after a crash, or in several terminals (or on several machines with
# one PostgreSQL URL) at once: they share the search. A trial whose script died
# without telling is failed and handed out again by the next `stagetune ask`.
# STAGETUNE and PYTHON name the commands to use (default: stagetune, python3).
set -euo pipefail
shopt -s lastpipe  # the `while read` at the end of a pipeline runs in this shell

storage=${1:-sqlite:///ask_tell.db}
trials=${2:-4}
epochs=${3:-8}
here=$(cd "$(dirname "$0")" && pwd)
read -r -a stagetune <<< "${STAGETUNE:-stagetune}"
python=${PYTHON:-python3}
search=(--storage "$storage" --name sine-cli)

while true; do
    # 1) ask: the next trial of the current stage, as JSON (exit 3: search finished)
    code=0
    trial=$("${stagetune[@]}" ask "${search[@]}" --trials "$trials" --epochs "$epochs" \
              --metric mse --pid $$) || code=$?
    if [ "$code" -eq 3 ]; then echo "finished: $trial"; exit 0; fi
    [ "$code" -eq 0 ] || exit "$code"
    read -r id epochs_now seed lr weight_decay dropout batch_size < <("$python" -c '
import json, sys
t = json.loads(sys.argv[1]); p = t["params"]
print(t["trial_id"], t["epochs"], t["seed"], p["lr"], p["weight_decay"], p["dropout"],
      p["batch_size"])' "$trial")
    echo "trial $id: lr=$lr weight_decay=$weight_decay dropout=$dropout" >&2

    # 2) train, telling each epoch's validation loss; stop when the answer is "stop"
    stopped=no
    set +e
    "$python" "$here/cli_trainer.py" --lr "$lr" --weight-decay "$weight_decay" \
        --dropout "$dropout" --batch-size "$batch_size" --epochs "$epochs_now" --seed "$seed" |
    while read -r _ epoch _ train_loss _ val_loss; do
        answer=$("${stagetune[@]}" tell-epoch "${search[@]}" --trial "$id" --epoch "$epoch" \
                   --value "$val_loss" --train-loss "$train_loss" --val-loss "$val_loss")
        if [ "$answer" = stop ]; then stopped=yes; break; fi
    done
    trained=${PIPESTATUS[0]}
    set -e

    # 3) tell: the last epoch's value, or that the trainer failed (a pruned trial is told)
    if [ "$stopped" = yes ]; then
        echo "trial $id: pruned" >&2
    elif [ "$trained" -ne 0 ]; then
        "${stagetune[@]}" tell "${search[@]}" --trial "$id" --failed "trainer exited with $trained"
    else
        "${stagetune[@]}" tell "${search[@]}" --trial "$id" --last >/dev/null
    fi
done
