#!/usr/bin/env bash
# The study's asrmerge pipeline, as run (W is the work folder).
W=${HOME}/.cache/asrmerge/study/full
set -euo pipefail
asrmerge convert packaged:base --dtype fp32 -o $W/base/ -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/medicina-tel-9e632961cf06d2f8 -o $W/tv/medicina-tel.safetensors -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/desporto-radio-0dd536fe017aeec8 -o $W/tv/desporto-radio.safetensors -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/meteo-estudio-0ef2f040b0d4a441 -o $W/tv/meteo-estudio.safetensors -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/financas-abafado-1fc808987f8dedac -o $W/tv/financas-abafado.safetensors -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/culinaria-eco-48c04a39d849d532 -o $W/tv/culinaria-eco.safetensors -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/direito-sala-39105b5d48f27f5d -o $W/tv/direito-sala.safetensors -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/tecnologia-podcast-bc36281f84d3d88e -o $W/tv/tecnologia-podcast.safetensors -q
asrmerge taskvec $W/base ${HOME}/.cache/asrmerge/study/finetunes/full/viagens-telefone-caa5177b15a27c33 -o $W/tv/viagens-telefone.safetensors -q
asrmerge merge --algo soup --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -o $W/merged/soup/ -q
asrmerge merge --algo model-stock --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -o $W/merged/model-stock/ -q
asrmerge merge --algo karcher --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -o $W/merged/karcher/ -q
asrmerge merge --algo multislerp --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -o $W/merged/multislerp/ -q
asrmerge merge --algo ta --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.2,0.35,0.6 -o '$W/merged/ta-lam{lam}/' -q
asrmerge transcribe $W/merged/ta-lam0.2 $W/data/dev.jsonl -o $W/hyp/dev-ta-0.2.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/ta-lam0.35 $W/data/dev.jsonl -o $W/hyp/dev-ta-0.35.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/ta-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-ta-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-ta-0.2.jsonl --json --by domain
asrmerge wer $W/hyp/dev-ta-0.35.jsonl --json --by domain
asrmerge wer $W/hyp/dev-ta-0.6.jsonl --json --by domain
asrmerge merge --algo ties --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/ties-lam{lam}/' -q
asrmerge transcribe $W/merged/ties-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-ties-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/ties-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-ties-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/ties-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-ties-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-ties-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-ties-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-ties-1.4.jsonl --json --by domain
asrmerge merge --algo dare-ta --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.2,0.35,0.6 -o '$W/merged/dare-ta-lam{lam}/' -q
asrmerge transcribe $W/merged/dare-ta-lam0.2 $W/data/dev.jsonl -o $W/hyp/dev-dare-ta-0.2.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/dare-ta-lam0.35 $W/data/dev.jsonl -o $W/hyp/dev-dare-ta-0.35.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/dare-ta-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-dare-ta-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-dare-ta-0.2.jsonl --json --by domain
asrmerge wer $W/hyp/dev-dare-ta-0.35.jsonl --json --by domain
asrmerge wer $W/hyp/dev-dare-ta-0.6.jsonl --json --by domain
asrmerge merge --algo dare-ties --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/dare-ties-lam{lam}/' -q
asrmerge transcribe $W/merged/dare-ties-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-dare-ties-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/dare-ties-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-dare-ties-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/dare-ties-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-dare-ties-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-dare-ties-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-dare-ties-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-dare-ties-1.4.jsonl --json --by domain
asrmerge merge --algo pcb --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/pcb-lam{lam}/' -q
asrmerge transcribe $W/merged/pcb-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-pcb-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/pcb-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-pcb-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/pcb-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-pcb-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-pcb-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-pcb-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-pcb-1.4.jsonl --json --by domain
asrmerge merge --algo sce --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/sce-lam{lam}/' -q
asrmerge transcribe $W/merged/sce-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-sce-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/sce-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-sce-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/sce-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-sce-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-sce-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-sce-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-sce-1.4.jsonl --json --by domain
asrmerge merge --algo iso-c --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/iso-c-lam{lam}/' -q
asrmerge transcribe $W/merged/iso-c-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-iso-c-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/iso-c-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-iso-c-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/iso-c-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-iso-c-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-iso-c-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-iso-c-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-iso-c-1.4.jsonl --json --by domain
asrmerge merge --algo iso-cts --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/iso-cts-lam{lam}/' -q
asrmerge transcribe $W/merged/iso-cts-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-iso-cts-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/iso-cts-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-iso-cts-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/iso-cts-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-iso-cts-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-iso-cts-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-iso-cts-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-iso-cts-1.4.jsonl --json --by domain
asrmerge merge --algo tsvm --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/tsvm-lam{lam}/' -q
asrmerge transcribe $W/merged/tsvm-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-tsvm-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/tsvm-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-tsvm-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/tsvm-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-tsvm-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-tsvm-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-tsvm-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-tsvm-1.4.jsonl --json --by domain
asrmerge merge --algo tsvm-ns --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/tsvm-ns-lam{lam}/' -q
asrmerge transcribe $W/merged/tsvm-ns-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-tsvm-ns-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/tsvm-ns-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-tsvm-ns-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/tsvm-ns-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-tsvm-ns-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-tsvm-ns-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-tsvm-ns-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-tsvm-ns-1.4.jsonl --json --by domain
asrmerge merge --algo boosted-tsvm --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p lam=0.6,1.0,1.4 -o '$W/merged/boosted-tsvm-lam{lam}/' -q
asrmerge transcribe $W/merged/boosted-tsvm-lam0.6 $W/data/dev.jsonl -o $W/hyp/dev-boosted-tsvm-0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/boosted-tsvm-lam1.0 $W/data/dev.jsonl -o $W/hyp/dev-boosted-tsvm-1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe $W/merged/boosted-tsvm-lam1.4 $W/data/dev.jsonl -o $W/hyp/dev-boosted-tsvm-1.4.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/dev-boosted-tsvm-0.6.jsonl --json --by domain
asrmerge wer $W/hyp/dev-boosted-tsvm-1.0.jsonl --json --by domain
asrmerge wer $W/hyp/dev-boosted-tsvm-1.4.jsonl --json --by domain
asrmerge merge --algo boosted-tsvm --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p beta=0.1 -p lam=1.4 -o $W/merged/boosted-beta0.1/ -q
asrmerge merge --algo boosted-tsvm --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p beta=0.3 -p lam=1.4 -o $W/merged/boosted-beta0.3/ -q
asrmerge merge --algo boosted-tsvm --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p beta=0.6 -p lam=1.4 -o $W/merged/boosted-beta0.6/ -q
asrmerge merge --algo boosted-tsvm --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors -p beta=1.0 -p lam=1.4 -o $W/merged/boosted-beta1.0/ -q
asrmerge svd-inspect --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors --include 'model.decoder.*' --merged $W/merged/boosted-tsvm-lam1.4 --summary --json > tests/bench/results/study/svd-summary.json
asrmerge svd-inspect --base $W/base $W/tv/medicina-tel.safetensors $W/tv/desporto-radio.safetensors $W/tv/meteo-estudio.safetensors $W/tv/financas-abafado.safetensors $W/tv/culinaria-eco.safetensors $W/tv/direito-sala.safetensors $W/tv/tecnologia-podcast.safetensors $W/tv/viagens-telefone.safetensors --include 'model.decoder.*' --merged $W/merged/boosted-tsvm-lam1.4 --plot tests/bench/results/study/svd-inspect.png -q > $W/svd-inspect.jsonl
asrmerge transcribe $W/base $W/data/eval.jsonl -o $W/hyp/eval-zero-shot.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/full-ft-7b1c6b6e8caff9c8 $W/data/eval.jsonl -o $W/hyp/eval-full-ft.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/soup $W/data/eval.jsonl -o $W/hyp/eval-soup.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/model-stock $W/data/eval.jsonl -o $W/hyp/eval-model-stock.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/karcher $W/data/eval.jsonl -o $W/hyp/eval-karcher.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/multislerp $W/data/eval.jsonl -o $W/hyp/eval-multislerp.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/ta-lam0.2 $W/data/eval.jsonl -o $W/hyp/eval-ta.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/ties-lam0.6 $W/data/eval.jsonl -o $W/hyp/eval-ties.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/dare-ta-lam0.2 $W/data/eval.jsonl -o $W/hyp/eval-dare-ta.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/dare-ties-lam0.6 $W/data/eval.jsonl -o $W/hyp/eval-dare-ties.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/pcb-lam0.6 $W/data/eval.jsonl -o $W/hyp/eval-pcb.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/sce-lam0.6 $W/data/eval.jsonl -o $W/hyp/eval-sce.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/iso-c-lam1.4 $W/data/eval.jsonl -o $W/hyp/eval-iso-c.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/iso-cts-lam1.4 $W/data/eval.jsonl -o $W/hyp/eval-iso-cts.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/tsvm-lam1.0 $W/data/eval.jsonl -o $W/hyp/eval-tsvm.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/tsvm-ns-lam1.4 $W/data/eval.jsonl -o $W/hyp/eval-tsvm-ns.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/boosted-tsvm-lam1.4 $W/data/eval.jsonl -o $W/hyp/eval-boosted-tsvm.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/boosted-beta0.1 $W/data/eval.jsonl -o $W/hyp/eval-boosted-tsvm_beta0.1.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/boosted-beta0.3 $W/data/eval.jsonl -o $W/hyp/eval-boosted-tsvm_beta0.3.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/boosted-beta0.6 $W/data/eval.jsonl -o $W/hyp/eval-boosted-tsvm_beta0.6.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe $W/merged/boosted-beta1.0 $W/data/eval.jsonl -o $W/hyp/eval-boosted-tsvm_beta1.0.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language-field language --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/medicina-tel-9e632961cf06d2f8 $W/data/test-medicina-tel.jsonl -o $W/hyp/test-idft-medicina-tel.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/desporto-radio-0dd536fe017aeec8 $W/data/test-desporto-radio.jsonl -o $W/hyp/test-idft-desporto-radio.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/meteo-estudio-0ef2f040b0d4a441 $W/data/test-meteo-estudio.jsonl -o $W/hyp/test-idft-meteo-estudio.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/financas-abafado-1fc808987f8dedac $W/data/test-financas-abafado.jsonl -o $W/hyp/test-idft-financas-abafado.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/culinaria-eco-48c04a39d849d532 $W/data/test-culinaria-eco.jsonl -o $W/hyp/test-idft-culinaria-eco.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/direito-sala-39105b5d48f27f5d $W/data/test-direito-sala.jsonl -o $W/hyp/test-idft-direito-sala.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/tecnologia-podcast-bc36281f84d3d88e $W/data/test-tecnologia-podcast.jsonl -o $W/hyp/test-idft-tecnologia-podcast.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge transcribe ${HOME}/.cache/asrmerge/study/finetunes/full/viagens-telefone-caa5177b15a27c33 $W/data/test-viagens-telefone.jsonl -o $W/hyp/test-idft-viagens-telefone.tmp --batch-size 16 --max-new-tokens 40 --chunk-length 10 -q --language pt
asrmerge wer $W/hyp/eval-zero-shot.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-zero-shot.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-zero-shot.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-zero-shot.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-full-ft.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-full-ft.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-full-ft.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-full-ft.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-soup.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-soup.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-soup.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-soup.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-model-stock.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-model-stock.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-model-stock.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-model-stock.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-karcher.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-karcher.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-karcher.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-karcher.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-multislerp.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-multislerp.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-multislerp.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-multislerp.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-ta.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-ta.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-ta.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-ta.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-ties.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-ties.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-ties.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-ties.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-dare-ta.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-dare-ta.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-dare-ta.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-dare-ta.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-dare-ties.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-dare-ties.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-dare-ties.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-dare-ties.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-pcb.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-pcb.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-pcb.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-pcb.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-sce.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-sce.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-sce.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-sce.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-iso-c.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-iso-c.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-iso-c.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-iso-c.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-iso-cts.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-iso-cts.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-iso-cts.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-iso-cts.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-tsvm.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-tsvm.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-tsvm.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-tsvm.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-tsvm-ns.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-tsvm-ns.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-tsvm-ns.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-tsvm-ns.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-boosted-tsvm.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-boosted-tsvm.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-boosted-tsvm.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-boosted-tsvm.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.1.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.1.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.1.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.1.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.3.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.3.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.3.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.3.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.6.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.6.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.6.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-boosted-tsvm_beta0.6.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/eval-boosted-tsvm_beta1.0.test.jsonl --json --by domain
asrmerge wer $W/hyp/eval-boosted-tsvm_beta1.0.english.jsonl --json --by domain --normalizer whisper-en
asrmerge wer $W/hyp/eval-boosted-tsvm_beta1.0.multi.jsonl --json --by domain --normalizer basic
asrmerge wer $W/hyp/eval-boosted-tsvm_beta1.0.multi.jsonl --json --by domain --normalizer basic --cer
asrmerge wer $W/hyp/test-idft-medicina-tel.jsonl $W/hyp/test-idft-desporto-radio.jsonl $W/hyp/test-idft-meteo-estudio.jsonl $W/hyp/test-idft-financas-abafado.jsonl $W/hyp/test-idft-culinaria-eco.jsonl $W/hyp/test-idft-direito-sala.jsonl $W/hyp/test-idft-tecnologia-podcast.jsonl $W/hyp/test-idft-viagens-telefone.jsonl --json --by domain
asrmerge wer --compare $W/hyp/eval-iso-c.test.jsonl $W/hyp/eval-full-ft.test.jsonl --json
