#!/usr/bin/env bash
# A newcomer's first hour with attempt, as one script: two small data sets of your own, with your own column names
# and label spellings (written below), trained, asked for predictions, evaluated, moved to another folder and
# plotted, without editing any file a run saves. Every command is printed before it runs ("+ attempt ...").
#
#   bash scripts/setup.sh && bash examples/first_hour.sh            # SmolLM2-135M-Instruct + its shipped prompts
#   BACKBONE=path/to/model STEPS=3 bash examples/first_hour.sh      # any backbone (tests/test_newcomer_ux.py)
#
# 1. reviews (comment, sentiment = neg / pos): a task of your own, from a task file;
# 2. sentence pairs (premise, hypothesis, verdict = entails / neutral): the built-in rte task on your files, your
#    columns and labels mapped onto rte's with --columns and --labels, trained with ATTEMPT over source prompts
#    (the ones this repository ships for SmolLM2, else one trained here on the reviews).
set -euo pipefail
cd "$(dirname "$0")/.."  # the repository: the shipped prompts are in prompts/
ATTEMPT=${ATTEMPT:-.venv/bin/attempt}
BACKBONE=${BACKBONE:-HuggingFaceTB/SmolLM2-135M-Instruct}
STEPS=${STEPS:-60}
WORK=${WORK:-first-hour}
run() { echo "+ attempt ${*:2}"; "$@"; }

rm -rf "$WORK" && mkdir -p "$WORK/reviews" "$WORK/pairs"

# ------------------------------------------------------------------------------------------- the data
cat > "$WORK/reviews/train.csv" <<'EOF'
comment,sentiment
"Arrived broken, and support never answered.",neg
Does exactly what it says. Five stars.,pos
"Cheap plastic, snapped on the second day.",neg
My kids love it and it survived the dishwasher.,pos
Battery dies within an hour. Returned it.,neg
"Comfortable, warm, and the stitching is solid.",pos
The colour is nothing like the photo.,neg
Best purchase I made this year.,pos
"Loud, slow and it smells of burnt plastic.",neg
Fits perfectly and looks great.,pos
Stopped working after a week.,neg
"Sturdy, light and easy to clean.",pos
Instructions were useless and parts were missing.,neg
Great value for the price.,pos
It leaks every single time.,neg
Works like a charm.,pos
EOF
cat > "$WORK/reviews/validation.csv" <<'EOF'
comment,sentiment
Fell apart in the first wash.,neg
Sharp blades and a comfortable grip.,pos
The zip broke on day one.,neg
Quiet and powerful. Very happy.,pos
Too small and badly made.,neg
Exactly what I needed.,pos
"Scratched, dented and late.",neg
Lovely gift and nicely packed.,pos
EOF
cat > "$WORK/reviews/task.yaml" <<'EOF'
name: shop_reviews
data:
  files: {train: train.csv, validation: validation.csv}  # no test file: validation is halved into the two
fields: [comment]
template: "review: {comment}"
label_field: sentiment
label_words: [negative, positive]
raw_labels: {neg: negative, pos: positive}  # how this file spells them
metrics: [accuracy, f1]
EOF
pairs() {  # premise,hypothesis,verdict rows
  cat <<'EOF'
premise,hypothesis,verdict
A woman is slicing bread in a kitchen.,Someone is preparing food.,entails
A woman is slicing bread in a kitchen.,The woman is a professional chef.,neutral
Two children are playing football in the rain.,Kids are outside.,entails
Two children are playing football in the rain.,The children are brothers.,neutral
The museum closes at six on weekdays.,The museum has opening hours.,entails
The museum closes at six on weekdays.,The museum is free on Sundays.,neutral
A man rides a bicycle across the bridge.,A person is crossing a bridge.,entails
A man rides a bicycle across the bridge.,The man is late for work.,neutral
The train was delayed by the snow.,Snow affected the train.,entails
The train was delayed by the snow.,The train was full.,neutral
An old dog sleeps by the fireplace.,An animal is resting.,entails
An old dog sleeps by the fireplace.,The dog belongs to a farmer.,neutral
She sent the letter on Monday.,A letter was sent.,entails
She sent the letter on Monday.,The letter was a job application.,neutral
The band played until midnight.,There was music in the evening.,entails
The band played until midnight.,The concert was sold out.,neutral
EOF
}
pairs > "$WORK/pairs/train.csv"
cat > "$WORK/pairs/validation.csv" <<'EOF'
premise,hypothesis,verdict
A chef tastes the soup before serving it.,Someone is in a kitchen.,entails
A chef tastes the soup before serving it.,The soup is too salty.,neutral
The plane landed safely in heavy fog.,The plane arrived.,entails
The plane landed safely in heavy fog.,The pilot was nervous.,neutral
EOF
cat > "$WORK/pairs/test.csv" <<'EOF'
premise,hypothesis,verdict
A boy is reading a book under a tree.,A child is reading.,entails
A boy is reading a book under a tree.,The book is about pirates.,neutral
The shop sells fresh fish every morning.,Fish can be bought at the shop.,entails
The shop sells fresh fish every morning.,The shop is near the sea.,neutral
EOF

# ------------------------------------------------------------------------------------------- look first
run $ATTEMPT tasks rte  # the fields and labels your columns and labels are mapped onto

# ------------------------------------------------------------------------------------------- train
run $ATTEMPT train --task-file "$WORK/reviews/task.yaml" --mode prompt_tuning --backbone "$BACKBONE" \
  --max-steps "$STEPS" --output-dir "$WORK/runs/reviews" --quiet
if [ "$BACKBONE" = "HuggingFaceTB/SmolLM2-135M-Instruct" ]; then
  library=prompts/smollm2-135m-instruct sources=(mnli qnli sst2)  # shipped with the repository
else  # no shipped prompts for this backbone: a source prompt of its own, from the reviews
  run $ATTEMPT train-source --task-file "$WORK/reviews/task.yaml" --backbone "$BACKBONE" \
    --library "$WORK/prompts" --max-steps "$STEPS" --output-dir "$WORK/runs/source-reviews" --quiet
  library="$WORK/prompts" sources=(shop_reviews)
fi
columns=(--columns premise=sentence1 --columns hypothesis=sentence2 --columns verdict=label)
run $ATTEMPT train --tasks rte --train-file "$WORK/pairs/train.csv" --validation-file "$WORK/pairs/validation.csv" \
  --test-file "$WORK/pairs/test.csv" "${columns[@]}" --labels entails=entailment neutral=not_entailment \
  --backbone "$BACKBONE" --library "$library" --source-prompts "${sources[@]}" --max-steps "$STEPS" \
  --eval-every "$(( (STEPS + 1) / 2 ))" --output-dir "$WORK/runs/pairs" --quiet

# ------------------------------------------------------------------------------------------- use the runs
printf 'Broke the first time I used it.\nSolid and well made, would buy again.\n' > "$WORK/new_reviews.txt"
run $ATTEMPT predict "$WORK/runs/reviews" --inputs "$WORK/new_reviews.txt" --output "$WORK/out/reviews.jsonl"
printf 'premise,hypothesis\nA cat sleeps on the sofa.,An animal is on the sofa.\n' > "$WORK/new_pairs.csv"
run $ATTEMPT predict "$WORK/runs/pairs" --inputs "$WORK/new_pairs.csv" --columns premise=sentence1 \
  --columns hypothesis=sentence2 --output "$WORK/out/pairs.jsonl"
run $ATTEMPT evaluate "$WORK/runs/reviews"              # its test split, from the files the run recorded
run $ATTEMPT evaluate "$WORK/runs/pairs" --split test

# ------------------------------------------------------------------------------------------- a moved run
mkdir -p "$WORK/elsewhere/models" && mv "$WORK/runs/pairs" "$WORK/elsewhere/models/pairs"
moved="$WORK/elsewhere/models/pairs"  # its recorded data paths now lead nowhere: score a file with --file
run $ATTEMPT predict "$moved" --inputs "$WORK/new_pairs.csv" --columns premise=sentence1 \
  --columns hypothesis=sentence2 --output "$WORK/out/pairs-moved.jsonl"
run $ATTEMPT evaluate "$moved" --file "$WORK/pairs/test.csv" "${columns[@]}" --out "$WORK/out/moved-eval"

# ------------------------------------------------------------------------------------------- plots
run $ATTEMPT plot "$WORK/runs/reviews"   # prompt tuning: curves, and a line saying why there is no heatmap
run $ATTEMPT plot "$moved"               # ATTEMPT: attention (mean and per example) and curves
run $ATTEMPT plot "$WORK/runs/reviews" "$moved" --out "$WORK/plots"  # the two runs side by side
echo "Done: runs in $WORK/runs and $moved, predictions in $WORK/out, comparison in $WORK/plots."
