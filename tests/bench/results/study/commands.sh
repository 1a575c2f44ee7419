#!/usr/bin/env bash
# Every asrmerge command of this study, in order, as asrmerge study ran them (its own files are
# relative to the study folder). Replay: bash commands.sh (into this folder) or O=NEW bash
# commands.sh (into NEW). The inputs default to their paths relative to this folder; set them to
# replay elsewhere: BASE=/models/base O=NEW bash commands.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${BASE:-"$HERE"/../base}
FT_medicina_tel=${FT_medicina_tel:-"$HERE"/../../finetunes/full/medicina-tel-d356a3b506981773}
FT_desporto_radio=${FT_desporto_radio:-"$HERE"/../../finetunes/full/desporto-radio-05b24fc7a950b479}
FT_meteo_estudio=${FT_meteo_estudio:-"$HERE"/../../finetunes/full/meteo-estudio-aa1b7142a3d72395}
FT_financas_abafado=${FT_financas_abafado:-"$HERE"/../../finetunes/full/financas-abafado-8c07340d5850c515}
FT_culinaria_eco=${FT_culinaria_eco:-"$HERE"/../../finetunes/full/culinaria-eco-b48da2a3ded807a5}
FT_direito_sala=${FT_direito_sala:-"$HERE"/../../finetunes/full/direito-sala-29ab1914f018b21a}
FT_tecnologia_podcast=${FT_tecnologia_podcast:-"$HERE"/../../finetunes/full/tecnologia-podcast-e3207351800c673e}
FT_viagens_telefone=${FT_viagens_telefone:-"$HERE"/../../finetunes/full/viagens-telefone-8a8af2deb6b6b329}
JOINT=${JOINT:-"$HERE"/../../finetunes/full/full-ft-67b65f2c7a6f60d7}
DEV=${DEV:-"$HERE"/../data/dev.jsonl}
TEST=${TEST:-"$HERE"/../data/test.jsonl}
EXTRA_english=${EXTRA_english:-"$HERE"/../data/english.jsonl}
EXTRA_multilingual=${EXTRA_multilingual:-"$HERE"/../data/multi.jsonl}
mkdir -p "${O:-$HERE}" && cd "${O:-$HERE}"
mkdir -p compare hyp/dev hyp/extra-english hyp/extra-multilingual hyp/own hyp/test merged scores/dev scores/extra-english scores/extra-multilingual scores/own scores/test tv
asrmerge taskvec "$BASE" "$FT_medicina_tel" -o tv/medicina-tel.safetensors -q
asrmerge taskvec "$BASE" "$FT_desporto_radio" -o tv/desporto-radio.safetensors -q
asrmerge taskvec "$BASE" "$FT_meteo_estudio" -o tv/meteo-estudio.safetensors -q
asrmerge taskvec "$BASE" "$FT_financas_abafado" -o tv/financas-abafado.safetensors -q
asrmerge taskvec "$BASE" "$FT_culinaria_eco" -o tv/culinaria-eco.safetensors -q
asrmerge taskvec "$BASE" "$FT_direito_sala" -o tv/direito-sala.safetensors -q
asrmerge taskvec "$BASE" "$FT_tecnologia_podcast" -o tv/tecnologia-podcast.safetensors -q
asrmerge taskvec "$BASE" "$FT_viagens_telefone" -o tv/viagens-telefone.safetensors -q
asrmerge merge --algo karcher --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -o merged/karcher/ -q
asrmerge merge --algo model-stock --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -o merged/model-stock/ -q
asrmerge merge --algo multislerp --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -o merged/multislerp/ -q
asrmerge merge --algo soup --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -o merged/soup/ -q
asrmerge merge --algo dare-ta --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=0.1,0.2,0.35 -o 'merged/dare-ta-lam{lam}/' -q
asrmerge merge --algo dare-ties --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=0.3,0.6,1.0 -o 'merged/dare-ties-lam{lam}/' -q
asrmerge merge --algo pcb --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=0.3,0.6,1.0 -o 'merged/pcb-lam{lam}/' -q
asrmerge merge --algo sce --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=0.3,0.6,1.0 -o 'merged/sce-lam{lam}/' -q
asrmerge merge --algo ta --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=0.1,0.2,0.35 -o 'merged/ta-lam{lam}/' -q
asrmerge merge --algo ties --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=0.3,0.6,1.0 -o 'merged/ties-lam{lam}/' -q
asrmerge merge --algo boosted-tsvm --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=1.0,1.4,1.8 -o 'merged/boosted-tsvm-lam{lam}/' -q
asrmerge merge --algo iso-c --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=1.0,1.4,1.8 -o 'merged/iso-c-lam{lam}/' -q
asrmerge merge --algo iso-cts --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=1.0,1.4,1.8 -o 'merged/iso-cts-lam{lam}/' -q
asrmerge merge --algo tsvm --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=1.0,1.4,1.8 -o 'merged/tsvm-lam{lam}/' -q
asrmerge merge --algo tsvm-ns --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p lam=1.0,1.4,1.8 -o 'merged/tsvm-ns-lam{lam}/' -q
asrmerge merge --algo iso-c --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p rank_mode=full -p lam=1.0,1.4,1.8 -o 'merged/iso-c-full-lam{lam}/' -q
asrmerge merge --algo iso-cts --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p rank_mode=full -p lam=1.0,1.4,1.8 -o 'merged/iso-cts-full-lam{lam}/' -q
asrmerge merge --algo tsvm --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p rank_mode=full -p lam=1.0,1.4,1.8 -o 'merged/tsvm-full-lam{lam}/' -q
asrmerge merge --algo tsvm-ns --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p rank_mode=full -p lam=1.0,1.4,1.8 -o 'merged/tsvm-ns-full-lam{lam}/' -q
asrmerge merge --algo boosted-tsvm --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p rank_mode=full -p lam=1.0,1.4,1.8 -o 'merged/boosted-tsvm-full-lam{lam}/' -q
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ta-lam0.1/ "$DEV" -o hyp/dev/dare-ta-lam0.1.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ta-lam0.2/ "$DEV" -o hyp/dev/dare-ta-lam0.2.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ta-lam0.35/ "$DEV" -o hyp/dev/dare-ta-lam0.35.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ties-lam0.3/ "$DEV" -o hyp/dev/dare-ties-lam0.3.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ties-lam0.6/ "$DEV" -o hyp/dev/dare-ties-lam0.6.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ties-lam1.0/ "$DEV" -o hyp/dev/dare-ties-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/pcb-lam0.3/ "$DEV" -o hyp/dev/pcb-lam0.3.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/pcb-lam0.6/ "$DEV" -o hyp/dev/pcb-lam0.6.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/pcb-lam1.0/ "$DEV" -o hyp/dev/pcb-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/sce-lam0.3/ "$DEV" -o hyp/dev/sce-lam0.3.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/sce-lam0.6/ "$DEV" -o hyp/dev/sce-lam0.6.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/sce-lam1.0/ "$DEV" -o hyp/dev/sce-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ta-lam0.1/ "$DEV" -o hyp/dev/ta-lam0.1.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ta-lam0.2/ "$DEV" -o hyp/dev/ta-lam0.2.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ta-lam0.35/ "$DEV" -o hyp/dev/ta-lam0.35.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ties-lam0.3/ "$DEV" -o hyp/dev/ties-lam0.3.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ties-lam0.6/ "$DEV" -o hyp/dev/ties-lam0.6.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ties-lam1.0/ "$DEV" -o hyp/dev/ties-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-lam1.0/ "$DEV" -o hyp/dev/boosted-tsvm-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-lam1.4/ "$DEV" -o hyp/dev/boosted-tsvm-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-lam1.8/ "$DEV" -o hyp/dev/boosted-tsvm-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-lam1.0/ "$DEV" -o hyp/dev/iso-c-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-lam1.4/ "$DEV" -o hyp/dev/iso-c-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-lam1.8/ "$DEV" -o hyp/dev/iso-c-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-lam1.0/ "$DEV" -o hyp/dev/iso-cts-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-lam1.4/ "$DEV" -o hyp/dev/iso-cts-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-lam1.8/ "$DEV" -o hyp/dev/iso-cts-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-lam1.0/ "$DEV" -o hyp/dev/tsvm-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-lam1.4/ "$DEV" -o hyp/dev/tsvm-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-lam1.8/ "$DEV" -o hyp/dev/tsvm-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-lam1.0/ "$DEV" -o hyp/dev/tsvm-ns-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-lam1.4/ "$DEV" -o hyp/dev/tsvm-ns-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-lam1.8/ "$DEV" -o hyp/dev/tsvm-ns-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-full-lam1.0/ "$DEV" -o hyp/dev/iso-c-full-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-full-lam1.4/ "$DEV" -o hyp/dev/iso-c-full-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-full-lam1.8/ "$DEV" -o hyp/dev/iso-c-full-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-full-lam1.0/ "$DEV" -o hyp/dev/iso-cts-full-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-full-lam1.4/ "$DEV" -o hyp/dev/iso-cts-full-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-full-lam1.8/ "$DEV" -o hyp/dev/iso-cts-full-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-full-lam1.0/ "$DEV" -o hyp/dev/tsvm-full-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-full-lam1.4/ "$DEV" -o hyp/dev/tsvm-full-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-full-lam1.8/ "$DEV" -o hyp/dev/tsvm-full-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-full-lam1.0/ "$DEV" -o hyp/dev/tsvm-ns-full-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-full-lam1.4/ "$DEV" -o hyp/dev/tsvm-ns-full-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-full-lam1.8/ "$DEV" -o hyp/dev/tsvm-ns-full-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-full-lam1.0/ "$DEV" -o hyp/dev/boosted-tsvm-full-lam1.0.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-full-lam1.4/ "$DEV" -o hyp/dev/boosted-tsvm-full-lam1.4.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-full-lam1.8/ "$DEV" -o hyp/dev/boosted-tsvm-full-lam1.8.jsonl --resume -q --where domain=medicina-tel,desporto-radio,meteo-estudio,financas-abafado,culinaria-eco,direito-sala,tecnologia-podcast,viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
asrmerge wer hyp/dev/dare-ta-lam0.1.jsonl --json --normalizer basic --by domain -q > scores/dev/dare-ta-lam0.1.json
asrmerge wer hyp/dev/dare-ta-lam0.2.jsonl --json --normalizer basic --by domain -q > scores/dev/dare-ta-lam0.2.json
asrmerge wer hyp/dev/dare-ta-lam0.35.jsonl --json --normalizer basic --by domain -q > scores/dev/dare-ta-lam0.35.json
asrmerge wer hyp/dev/dare-ties-lam0.3.jsonl --json --normalizer basic --by domain -q > scores/dev/dare-ties-lam0.3.json
asrmerge wer hyp/dev/dare-ties-lam0.6.jsonl --json --normalizer basic --by domain -q > scores/dev/dare-ties-lam0.6.json
asrmerge wer hyp/dev/dare-ties-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/dare-ties-lam1.0.json
asrmerge wer hyp/dev/pcb-lam0.3.jsonl --json --normalizer basic --by domain -q > scores/dev/pcb-lam0.3.json
asrmerge wer hyp/dev/pcb-lam0.6.jsonl --json --normalizer basic --by domain -q > scores/dev/pcb-lam0.6.json
asrmerge wer hyp/dev/pcb-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/pcb-lam1.0.json
asrmerge wer hyp/dev/sce-lam0.3.jsonl --json --normalizer basic --by domain -q > scores/dev/sce-lam0.3.json
asrmerge wer hyp/dev/sce-lam0.6.jsonl --json --normalizer basic --by domain -q > scores/dev/sce-lam0.6.json
asrmerge wer hyp/dev/sce-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/sce-lam1.0.json
asrmerge wer hyp/dev/ta-lam0.1.jsonl --json --normalizer basic --by domain -q > scores/dev/ta-lam0.1.json
asrmerge wer hyp/dev/ta-lam0.2.jsonl --json --normalizer basic --by domain -q > scores/dev/ta-lam0.2.json
asrmerge wer hyp/dev/ta-lam0.35.jsonl --json --normalizer basic --by domain -q > scores/dev/ta-lam0.35.json
asrmerge wer hyp/dev/ties-lam0.3.jsonl --json --normalizer basic --by domain -q > scores/dev/ties-lam0.3.json
asrmerge wer hyp/dev/ties-lam0.6.jsonl --json --normalizer basic --by domain -q > scores/dev/ties-lam0.6.json
asrmerge wer hyp/dev/ties-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/ties-lam1.0.json
asrmerge wer hyp/dev/boosted-tsvm-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/boosted-tsvm-lam1.0.json
asrmerge wer hyp/dev/boosted-tsvm-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/boosted-tsvm-lam1.4.json
asrmerge wer hyp/dev/boosted-tsvm-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/boosted-tsvm-lam1.8.json
asrmerge wer hyp/dev/iso-c-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-c-lam1.0.json
asrmerge wer hyp/dev/iso-c-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-c-lam1.4.json
asrmerge wer hyp/dev/iso-c-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-c-lam1.8.json
asrmerge wer hyp/dev/iso-cts-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-cts-lam1.0.json
asrmerge wer hyp/dev/iso-cts-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-cts-lam1.4.json
asrmerge wer hyp/dev/iso-cts-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-cts-lam1.8.json
asrmerge wer hyp/dev/tsvm-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-lam1.0.json
asrmerge wer hyp/dev/tsvm-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-lam1.4.json
asrmerge wer hyp/dev/tsvm-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-lam1.8.json
asrmerge wer hyp/dev/tsvm-ns-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-ns-lam1.0.json
asrmerge wer hyp/dev/tsvm-ns-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-ns-lam1.4.json
asrmerge wer hyp/dev/tsvm-ns-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-ns-lam1.8.json
asrmerge wer hyp/dev/iso-c-full-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-c-full-lam1.0.json
asrmerge wer hyp/dev/iso-c-full-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-c-full-lam1.4.json
asrmerge wer hyp/dev/iso-c-full-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-c-full-lam1.8.json
asrmerge wer hyp/dev/iso-cts-full-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-cts-full-lam1.0.json
asrmerge wer hyp/dev/iso-cts-full-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-cts-full-lam1.4.json
asrmerge wer hyp/dev/iso-cts-full-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/iso-cts-full-lam1.8.json
asrmerge wer hyp/dev/tsvm-full-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-full-lam1.0.json
asrmerge wer hyp/dev/tsvm-full-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-full-lam1.4.json
asrmerge wer hyp/dev/tsvm-full-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-full-lam1.8.json
asrmerge wer hyp/dev/tsvm-ns-full-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-ns-full-lam1.0.json
asrmerge wer hyp/dev/tsvm-ns-full-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-ns-full-lam1.4.json
asrmerge wer hyp/dev/tsvm-ns-full-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/tsvm-ns-full-lam1.8.json
asrmerge wer hyp/dev/boosted-tsvm-full-lam1.0.jsonl --json --normalizer basic --by domain -q > scores/dev/boosted-tsvm-full-lam1.0.json
asrmerge wer hyp/dev/boosted-tsvm-full-lam1.4.jsonl --json --normalizer basic --by domain -q > scores/dev/boosted-tsvm-full-lam1.4.json
asrmerge wer hyp/dev/boosted-tsvm-full-lam1.8.jsonl --json --normalizer basic --by domain -q > scores/dev/boosted-tsvm-full-lam1.8.json
asrmerge merge --algo boosted-tsvm --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors -p beta=0.1,0.3,0.6,1.0 -p lam=1.8 -o 'merged/boosted-tsvm-beta{beta}/' -q
asrmerge svd-inspect --base "$BASE" tv/medicina-tel.safetensors tv/desporto-radio.safetensors tv/meteo-estudio.safetensors tv/financas-abafado.safetensors tv/culinaria-eco.safetensors tv/direito-sala.safetensors tv/tecnologia-podcast.safetensors tv/viagens-telefone.safetensors --merged merged/boosted-tsvm-lam1.8/ --summary --json --plot svd-inspect.png -q > svd-summary.json
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$BASE" "$TEST" -o hyp/test/zero-shot.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$BASE" "$EXTRA_english" -o hyp/extra-english/zero-shot.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$BASE" "$EXTRA_multilingual" -o hyp/extra-multilingual/zero-shot.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$JOINT" "$TEST" -o hyp/test/joint.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$JOINT" "$EXTRA_english" -o hyp/extra-english/joint.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$JOINT" "$EXTRA_multilingual" -o hyp/extra-multilingual/joint.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/karcher/ "$TEST" -o hyp/test/karcher.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/karcher/ "$EXTRA_english" -o hyp/extra-english/karcher.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/karcher/ "$EXTRA_multilingual" -o hyp/extra-multilingual/karcher.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/model-stock/ "$TEST" -o hyp/test/model-stock.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/model-stock/ "$EXTRA_english" -o hyp/extra-english/model-stock.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/model-stock/ "$EXTRA_multilingual" -o hyp/extra-multilingual/model-stock.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/multislerp/ "$TEST" -o hyp/test/multislerp.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/multislerp/ "$EXTRA_english" -o hyp/extra-english/multislerp.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/multislerp/ "$EXTRA_multilingual" -o hyp/extra-multilingual/multislerp.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/soup/ "$TEST" -o hyp/test/soup.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/soup/ "$EXTRA_english" -o hyp/extra-english/soup.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/soup/ "$EXTRA_multilingual" -o hyp/extra-multilingual/soup.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ta-lam0.1/ "$TEST" -o hyp/test/dare-ta.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ta-lam0.1/ "$EXTRA_english" -o hyp/extra-english/dare-ta.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ta-lam0.1/ "$EXTRA_multilingual" -o hyp/extra-multilingual/dare-ta.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ties-lam0.3/ "$TEST" -o hyp/test/dare-ties.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ties-lam0.3/ "$EXTRA_english" -o hyp/extra-english/dare-ties.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/dare-ties-lam0.3/ "$EXTRA_multilingual" -o hyp/extra-multilingual/dare-ties.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/pcb-lam0.6/ "$TEST" -o hyp/test/pcb.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/pcb-lam0.6/ "$EXTRA_english" -o hyp/extra-english/pcb.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/pcb-lam0.6/ "$EXTRA_multilingual" -o hyp/extra-multilingual/pcb.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/sce-lam0.6/ "$TEST" -o hyp/test/sce.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/sce-lam0.6/ "$EXTRA_english" -o hyp/extra-english/sce.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/sce-lam0.6/ "$EXTRA_multilingual" -o hyp/extra-multilingual/sce.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ta-lam0.1/ "$TEST" -o hyp/test/ta.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ta-lam0.1/ "$EXTRA_english" -o hyp/extra-english/ta.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ta-lam0.1/ "$EXTRA_multilingual" -o hyp/extra-multilingual/ta.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ties-lam0.6/ "$TEST" -o hyp/test/ties.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ties-lam0.6/ "$EXTRA_english" -o hyp/extra-english/ties.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/ties-lam0.6/ "$EXTRA_multilingual" -o hyp/extra-multilingual/ties.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-lam1.8/ "$TEST" -o hyp/test/boosted-tsvm.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-lam1.8/ "$EXTRA_english" -o hyp/extra-english/boosted-tsvm.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-lam1.8/ "$EXTRA_multilingual" -o hyp/extra-multilingual/boosted-tsvm.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-lam1.8/ "$TEST" -o hyp/test/iso-c.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-lam1.8/ "$EXTRA_english" -o hyp/extra-english/iso-c.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-lam1.8/ "$EXTRA_multilingual" -o hyp/extra-multilingual/iso-c.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-lam1.8/ "$TEST" -o hyp/test/iso-cts.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-lam1.8/ "$EXTRA_english" -o hyp/extra-english/iso-cts.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-lam1.8/ "$EXTRA_multilingual" -o hyp/extra-multilingual/iso-cts.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-lam1.0/ "$TEST" -o hyp/test/tsvm.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-lam1.0/ "$EXTRA_english" -o hyp/extra-english/tsvm.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-lam1.0/ "$EXTRA_multilingual" -o hyp/extra-multilingual/tsvm.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-lam1.4/ "$TEST" -o hyp/test/tsvm-ns.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-lam1.4/ "$EXTRA_english" -o hyp/extra-english/tsvm-ns.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-lam1.4/ "$EXTRA_multilingual" -o hyp/extra-multilingual/tsvm-ns.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-full-lam1.8/ "$TEST" -o hyp/test/iso-c-full.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-full-lam1.8/ "$EXTRA_english" -o hyp/extra-english/iso-c-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-c-full-lam1.8/ "$EXTRA_multilingual" -o hyp/extra-multilingual/iso-c-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-full-lam1.8/ "$TEST" -o hyp/test/iso-cts-full.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-full-lam1.8/ "$EXTRA_english" -o hyp/extra-english/iso-cts-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/iso-cts-full-lam1.8/ "$EXTRA_multilingual" -o hyp/extra-multilingual/iso-cts-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-full-lam1.0/ "$TEST" -o hyp/test/tsvm-full.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-full-lam1.0/ "$EXTRA_english" -o hyp/extra-english/tsvm-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-full-lam1.0/ "$EXTRA_multilingual" -o hyp/extra-multilingual/tsvm-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-full-lam1.4/ "$TEST" -o hyp/test/tsvm-ns-full.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-full-lam1.4/ "$EXTRA_english" -o hyp/extra-english/tsvm-ns-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/tsvm-ns-full-lam1.4/ "$EXTRA_multilingual" -o hyp/extra-multilingual/tsvm-ns-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-full-lam1.8/ "$TEST" -o hyp/test/boosted-tsvm-full.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-full-lam1.8/ "$EXTRA_english" -o hyp/extra-english/boosted-tsvm-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-full-lam1.8/ "$EXTRA_multilingual" -o hyp/extra-multilingual/boosted-tsvm-full.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.1/ "$TEST" -o hyp/test/boosted-tsvm-beta0.1.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.1/ "$EXTRA_english" -o hyp/extra-english/boosted-tsvm-beta0.1.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.1/ "$EXTRA_multilingual" -o hyp/extra-multilingual/boosted-tsvm-beta0.1.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.3/ "$TEST" -o hyp/test/boosted-tsvm-beta0.3.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.3/ "$EXTRA_english" -o hyp/extra-english/boosted-tsvm-beta0.3.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.3/ "$EXTRA_multilingual" -o hyp/extra-multilingual/boosted-tsvm-beta0.3.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.6/ "$TEST" -o hyp/test/boosted-tsvm-beta0.6.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.6/ "$EXTRA_english" -o hyp/extra-english/boosted-tsvm-beta0.6.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta0.6/ "$EXTRA_multilingual" -o hyp/extra-multilingual/boosted-tsvm-beta0.6.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta1.0/ "$TEST" -o hyp/test/boosted-tsvm-beta1.0.jsonl --resume -q --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta1.0/ "$EXTRA_english" -o hyp/extra-english/boosted-tsvm-beta1.0.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe merged/boosted-tsvm-beta1.0/ "$EXTRA_multilingual" -o hyp/extra-multilingual/boosted-tsvm-beta1.0.jsonl --resume -q --language-field language --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_medicina_tel" "$TEST" -o hyp/own/medicina-tel.jsonl --resume -q --where domain=medicina-tel --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_desporto_radio" "$TEST" -o hyp/own/desporto-radio.jsonl --resume -q --where domain=desporto-radio --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_meteo_estudio" "$TEST" -o hyp/own/meteo-estudio.jsonl --resume -q --where domain=meteo-estudio --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_financas_abafado" "$TEST" -o hyp/own/financas-abafado.jsonl --resume -q --where domain=financas-abafado --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_culinaria_eco" "$TEST" -o hyp/own/culinaria-eco.jsonl --resume -q --where domain=culinaria-eco --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_direito_sala" "$TEST" -o hyp/own/direito-sala.jsonl --resume -q --where domain=direito-sala --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_tecnologia_podcast" "$TEST" -o hyp/own/tecnologia-podcast.jsonl --resume -q --where domain=tecnologia-podcast --language pt --chunk-length 10 --max-new-tokens 40
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 asrmerge transcribe "$FT_viagens_telefone" "$TEST" -o hyp/own/viagens-telefone.jsonl --resume -q --where domain=viagens-telefone --language pt --chunk-length 10 --max-new-tokens 40
asrmerge wer hyp/test/zero-shot.jsonl --json --normalizer basic --by domain -q > scores/test/zero-shot.json
asrmerge wer hyp/extra-english/zero-shot.jsonl --json --normalizer basic --by language -q > scores/extra-english/zero-shot.json
asrmerge wer hyp/extra-multilingual/zero-shot.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/zero-shot.json
asrmerge wer hyp/extra-multilingual/zero-shot.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/zero-shot.cer.json
asrmerge wer hyp/test/joint.jsonl --json --normalizer basic --by domain -q > scores/test/joint.json
asrmerge wer hyp/extra-english/joint.jsonl --json --normalizer basic --by language -q > scores/extra-english/joint.json
asrmerge wer hyp/extra-multilingual/joint.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/joint.json
asrmerge wer hyp/extra-multilingual/joint.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/joint.cer.json
asrmerge wer hyp/test/karcher.jsonl --json --normalizer basic --by domain -q > scores/test/karcher.json
asrmerge wer hyp/extra-english/karcher.jsonl --json --normalizer basic --by language -q > scores/extra-english/karcher.json
asrmerge wer hyp/extra-multilingual/karcher.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/karcher.json
asrmerge wer hyp/extra-multilingual/karcher.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/karcher.cer.json
asrmerge wer hyp/test/model-stock.jsonl --json --normalizer basic --by domain -q > scores/test/model-stock.json
asrmerge wer hyp/extra-english/model-stock.jsonl --json --normalizer basic --by language -q > scores/extra-english/model-stock.json
asrmerge wer hyp/extra-multilingual/model-stock.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/model-stock.json
asrmerge wer hyp/extra-multilingual/model-stock.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/model-stock.cer.json
asrmerge wer hyp/test/multislerp.jsonl --json --normalizer basic --by domain -q > scores/test/multislerp.json
asrmerge wer hyp/extra-english/multislerp.jsonl --json --normalizer basic --by language -q > scores/extra-english/multislerp.json
asrmerge wer hyp/extra-multilingual/multislerp.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/multislerp.json
asrmerge wer hyp/extra-multilingual/multislerp.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/multislerp.cer.json
asrmerge wer hyp/test/soup.jsonl --json --normalizer basic --by domain -q > scores/test/soup.json
asrmerge wer hyp/extra-english/soup.jsonl --json --normalizer basic --by language -q > scores/extra-english/soup.json
asrmerge wer hyp/extra-multilingual/soup.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/soup.json
asrmerge wer hyp/extra-multilingual/soup.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/soup.cer.json
asrmerge wer hyp/test/dare-ta.jsonl --json --normalizer basic --by domain -q > scores/test/dare-ta.json
asrmerge wer hyp/extra-english/dare-ta.jsonl --json --normalizer basic --by language -q > scores/extra-english/dare-ta.json
asrmerge wer hyp/extra-multilingual/dare-ta.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/dare-ta.json
asrmerge wer hyp/extra-multilingual/dare-ta.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/dare-ta.cer.json
asrmerge wer hyp/test/dare-ties.jsonl --json --normalizer basic --by domain -q > scores/test/dare-ties.json
asrmerge wer hyp/extra-english/dare-ties.jsonl --json --normalizer basic --by language -q > scores/extra-english/dare-ties.json
asrmerge wer hyp/extra-multilingual/dare-ties.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/dare-ties.json
asrmerge wer hyp/extra-multilingual/dare-ties.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/dare-ties.cer.json
asrmerge wer hyp/test/pcb.jsonl --json --normalizer basic --by domain -q > scores/test/pcb.json
asrmerge wer hyp/extra-english/pcb.jsonl --json --normalizer basic --by language -q > scores/extra-english/pcb.json
asrmerge wer hyp/extra-multilingual/pcb.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/pcb.json
asrmerge wer hyp/extra-multilingual/pcb.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/pcb.cer.json
asrmerge wer hyp/test/sce.jsonl --json --normalizer basic --by domain -q > scores/test/sce.json
asrmerge wer hyp/extra-english/sce.jsonl --json --normalizer basic --by language -q > scores/extra-english/sce.json
asrmerge wer hyp/extra-multilingual/sce.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/sce.json
asrmerge wer hyp/extra-multilingual/sce.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/sce.cer.json
asrmerge wer hyp/test/ta.jsonl --json --normalizer basic --by domain -q > scores/test/ta.json
asrmerge wer hyp/extra-english/ta.jsonl --json --normalizer basic --by language -q > scores/extra-english/ta.json
asrmerge wer hyp/extra-multilingual/ta.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/ta.json
asrmerge wer hyp/extra-multilingual/ta.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/ta.cer.json
asrmerge wer hyp/test/ties.jsonl --json --normalizer basic --by domain -q > scores/test/ties.json
asrmerge wer hyp/extra-english/ties.jsonl --json --normalizer basic --by language -q > scores/extra-english/ties.json
asrmerge wer hyp/extra-multilingual/ties.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/ties.json
asrmerge wer hyp/extra-multilingual/ties.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/ties.cer.json
asrmerge wer hyp/test/boosted-tsvm.jsonl --json --normalizer basic --by domain -q > scores/test/boosted-tsvm.json
asrmerge wer hyp/extra-english/boosted-tsvm.jsonl --json --normalizer basic --by language -q > scores/extra-english/boosted-tsvm.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/boosted-tsvm.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/boosted-tsvm.cer.json
asrmerge wer hyp/test/iso-c.jsonl --json --normalizer basic --by domain -q > scores/test/iso-c.json
asrmerge wer hyp/extra-english/iso-c.jsonl --json --normalizer basic --by language -q > scores/extra-english/iso-c.json
asrmerge wer hyp/extra-multilingual/iso-c.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/iso-c.json
asrmerge wer hyp/extra-multilingual/iso-c.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/iso-c.cer.json
asrmerge wer hyp/test/iso-cts.jsonl --json --normalizer basic --by domain -q > scores/test/iso-cts.json
asrmerge wer hyp/extra-english/iso-cts.jsonl --json --normalizer basic --by language -q > scores/extra-english/iso-cts.json
asrmerge wer hyp/extra-multilingual/iso-cts.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/iso-cts.json
asrmerge wer hyp/extra-multilingual/iso-cts.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/iso-cts.cer.json
asrmerge wer hyp/test/tsvm.jsonl --json --normalizer basic --by domain -q > scores/test/tsvm.json
asrmerge wer hyp/extra-english/tsvm.jsonl --json --normalizer basic --by language -q > scores/extra-english/tsvm.json
asrmerge wer hyp/extra-multilingual/tsvm.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/tsvm.json
asrmerge wer hyp/extra-multilingual/tsvm.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/tsvm.cer.json
asrmerge wer hyp/test/tsvm-ns.jsonl --json --normalizer basic --by domain -q > scores/test/tsvm-ns.json
asrmerge wer hyp/extra-english/tsvm-ns.jsonl --json --normalizer basic --by language -q > scores/extra-english/tsvm-ns.json
asrmerge wer hyp/extra-multilingual/tsvm-ns.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/tsvm-ns.json
asrmerge wer hyp/extra-multilingual/tsvm-ns.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/tsvm-ns.cer.json
asrmerge wer hyp/test/iso-c-full.jsonl --json --normalizer basic --by domain -q > scores/test/iso-c-full.json
asrmerge wer hyp/extra-english/iso-c-full.jsonl --json --normalizer basic --by language -q > scores/extra-english/iso-c-full.json
asrmerge wer hyp/extra-multilingual/iso-c-full.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/iso-c-full.json
asrmerge wer hyp/extra-multilingual/iso-c-full.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/iso-c-full.cer.json
asrmerge wer hyp/test/iso-cts-full.jsonl --json --normalizer basic --by domain -q > scores/test/iso-cts-full.json
asrmerge wer hyp/extra-english/iso-cts-full.jsonl --json --normalizer basic --by language -q > scores/extra-english/iso-cts-full.json
asrmerge wer hyp/extra-multilingual/iso-cts-full.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/iso-cts-full.json
asrmerge wer hyp/extra-multilingual/iso-cts-full.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/iso-cts-full.cer.json
asrmerge wer hyp/test/tsvm-full.jsonl --json --normalizer basic --by domain -q > scores/test/tsvm-full.json
asrmerge wer hyp/extra-english/tsvm-full.jsonl --json --normalizer basic --by language -q > scores/extra-english/tsvm-full.json
asrmerge wer hyp/extra-multilingual/tsvm-full.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/tsvm-full.json
asrmerge wer hyp/extra-multilingual/tsvm-full.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/tsvm-full.cer.json
asrmerge wer hyp/test/tsvm-ns-full.jsonl --json --normalizer basic --by domain -q > scores/test/tsvm-ns-full.json
asrmerge wer hyp/extra-english/tsvm-ns-full.jsonl --json --normalizer basic --by language -q > scores/extra-english/tsvm-ns-full.json
asrmerge wer hyp/extra-multilingual/tsvm-ns-full.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/tsvm-ns-full.json
asrmerge wer hyp/extra-multilingual/tsvm-ns-full.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/tsvm-ns-full.cer.json
asrmerge wer hyp/test/boosted-tsvm-full.jsonl --json --normalizer basic --by domain -q > scores/test/boosted-tsvm-full.json
asrmerge wer hyp/extra-english/boosted-tsvm-full.jsonl --json --normalizer basic --by language -q > scores/extra-english/boosted-tsvm-full.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-full.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/boosted-tsvm-full.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-full.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/boosted-tsvm-full.cer.json
asrmerge wer hyp/test/boosted-tsvm-beta0.1.jsonl --json --normalizer basic --by domain -q > scores/test/boosted-tsvm-beta0.1.json
asrmerge wer hyp/extra-english/boosted-tsvm-beta0.1.jsonl --json --normalizer basic --by language -q > scores/extra-english/boosted-tsvm-beta0.1.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta0.1.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/boosted-tsvm-beta0.1.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta0.1.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/boosted-tsvm-beta0.1.cer.json
asrmerge wer hyp/test/boosted-tsvm-beta0.3.jsonl --json --normalizer basic --by domain -q > scores/test/boosted-tsvm-beta0.3.json
asrmerge wer hyp/extra-english/boosted-tsvm-beta0.3.jsonl --json --normalizer basic --by language -q > scores/extra-english/boosted-tsvm-beta0.3.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta0.3.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/boosted-tsvm-beta0.3.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta0.3.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/boosted-tsvm-beta0.3.cer.json
asrmerge wer hyp/test/boosted-tsvm-beta0.6.jsonl --json --normalizer basic --by domain -q > scores/test/boosted-tsvm-beta0.6.json
asrmerge wer hyp/extra-english/boosted-tsvm-beta0.6.jsonl --json --normalizer basic --by language -q > scores/extra-english/boosted-tsvm-beta0.6.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta0.6.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/boosted-tsvm-beta0.6.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta0.6.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/boosted-tsvm-beta0.6.cer.json
asrmerge wer hyp/test/boosted-tsvm-beta1.0.jsonl --json --normalizer basic --by domain -q > scores/test/boosted-tsvm-beta1.0.json
asrmerge wer hyp/extra-english/boosted-tsvm-beta1.0.jsonl --json --normalizer basic --by language -q > scores/extra-english/boosted-tsvm-beta1.0.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta1.0.jsonl --json --normalizer basic --by language -q > scores/extra-multilingual/boosted-tsvm-beta1.0.json
asrmerge wer hyp/extra-multilingual/boosted-tsvm-beta1.0.jsonl --json --normalizer basic --by language --cer -q > scores/extra-multilingual/boosted-tsvm-beta1.0.cer.json
asrmerge wer hyp/own/medicina-tel.jsonl --json --normalizer basic --by domain -q > scores/own/medicina-tel.json
asrmerge wer hyp/own/desporto-radio.jsonl --json --normalizer basic --by domain -q > scores/own/desporto-radio.json
asrmerge wer hyp/own/meteo-estudio.jsonl --json --normalizer basic --by domain -q > scores/own/meteo-estudio.json
asrmerge wer hyp/own/financas-abafado.jsonl --json --normalizer basic --by domain -q > scores/own/financas-abafado.json
asrmerge wer hyp/own/culinaria-eco.jsonl --json --normalizer basic --by domain -q > scores/own/culinaria-eco.json
asrmerge wer hyp/own/direito-sala.jsonl --json --normalizer basic --by domain -q > scores/own/direito-sala.json
asrmerge wer hyp/own/tecnologia-podcast.jsonl --json --normalizer basic --by domain -q > scores/own/tecnologia-podcast.json
asrmerge wer hyp/own/viagens-telefone.jsonl --json --normalizer basic --by domain -q > scores/own/viagens-telefone.json
asrmerge wer --compare hyp/test/iso-cts.jsonl hyp/test/joint.jsonl --json --normalizer basic -q > compare/best-vs-joint.json
asrmerge wer --compare hyp/test/iso-cts.jsonl hyp/test/iso-cts-full.jsonl --json --normalizer basic -q > compare/best-vs-next.json
