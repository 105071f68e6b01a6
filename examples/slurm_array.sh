#!/usr/bin/env bash
# One staged search on a Slurm cluster: each task of the job array is one worker with one
# GPU, and all of them run the same command against one PostgreSQL database, which shares
# the stages among them (a stage ends with exactly its budget, however many tasks run).
#
#   export STAGETUNE_DB_PASSWORD=...        # never written in this file or on a command line
#   sbatch examples/slurm_array.sh          # sbatch passes your environment to the tasks
#
# Add tasks later (another sbatch) and they join the running search; requeued or
# preempted tasks (SIGTERM) fail their trial cleanly and it is run again. The database
# needs max_connections >= 2 x tasks + 10 (docs/scale.md).
#SBATCH --job-name=stagetune
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=stagetune-%A_%a.out
set -euo pipefail

: "${STAGETUNE_DB_PASSWORD:?export STAGETUNE_DB_PASSWORD before sbatch}"
DB_HOST=${STAGETUNE_DB_HOST:-postgres.example.org}
DB_NAME=${STAGETUNE_DB_NAME:-stagetune}
SEARCH=${STAGETUNE_SEARCH:-digits-cluster}

echo "stagetune worker ${SLURM_ARRAY_TASK_ID:-0} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname)"
# The single quotes keep ${STAGETUNE_DB_PASSWORD} literal: stagetune reads it from the
# environment, so the password never shows in `ps` or in Slurm's job records.
exec stagetune run \
    --task digits-mlp \
    --name "$SEARCH" \
    --storage 'postgresql://stagetune:${STAGETUNE_DB_PASSWORD}@'"$DB_HOST:5432/$DB_NAME" \
    --threads "${SLURM_CPUS_PER_TASK:-1}" \
    --quiet
