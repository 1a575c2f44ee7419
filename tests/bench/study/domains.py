"""The study's synthetic European/Brazilian Portuguese speech domains: voices, channels, noise and topics.

Each domain combines an espeak-ng voice (``pt`` European, ``pt-br`` Brazilian, with a variant), a speaking
rate and pitch, a sox channel, optional noise at a fixed SNR, and a topic vocabulary. Every topic's nouns
are split: a held-out part appears only in test sentences, so a fine-tune cannot reach zero test WER by
memorising the training vocabulary. Sentences come from seeded templates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COMMON_SUBJECTS = ["o senhor", "a senhora", "o doutor", "a equipa", "o cliente", "a professora", "o vizinho",
                   "a empresa", "o governo", "a família", "o técnico", "a diretora"]
NUMBERS = ["dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove", "dez", "doze", "quinze", "vinte"]
TIMES = ["hoje", "ontem", "amanhã", "esta semana", "no mês passado", "todos os dias", "ao fim da tarde",
         "de manhã cedo", "durante a noite", "na próxima segunda"]


@dataclass(frozen=True)
class Topic:
    name: str
    nouns: tuple[str, ...]  # the last ``held_out`` of these appear only in test sentences
    verbs: tuple[str, ...]
    templates: tuple[str, ...]  # with {s} subject, {v} verb, {n} {n2} nouns, {num} number, {t} time
    held_out: int = 6


TOPICS = {
    "medicina": Topic("medicina", (
        "febre", "tosse", "receita", "consulta", "hospital", "enfermeira", "análise", "vacina", "pressão arterial",
        "dor de cabeça", "comprimido", "cirurgia", "urgência", "xarope", "radiografia", "alergia", "antibiótico",
        "garganta", "joelho", "estômago", "pneumonia", "fisioterapia", "cardiologista", "ecografia", "insulina",
        "colesterol"), (
        "receitou", "marcou", "analisou", "tratou", "recomendou", "examinou"), (
        "{s} {v} a {n} {t}", "o paciente tem {n} há {num} dias", "é preciso fazer uma {n} antes da {n2}",
        "{s} foi ao {n} por causa da {n2}", "a {n} deve ser tomada {num} vezes por dia")),
    "desporto": Topic("desporto", (
        "golo", "árbitro", "campeonato", "treinador", "estádio", "equipa", "jogador", "penálti", "classificação",
        "baliza", "adepto", "vitória", "derrota", "empate", "maratona", "ciclismo", "natação", "medalha",
        "guarda-redes", "cartão amarelo", "prolongamento", "transferência", "atletismo", "basquetebol",
        "andebol", "canoagem"), (
        "marcou", "venceu", "perdeu", "defendeu", "treinou", "anunciou"), (
        "{s} {v} o {n} {t}", "o {n} terminou com {num} golos", "a {n} ganhou a {n2} {t}",
        "depois do {n} veio o {n2}", "o {n} do {n2} foi muito discutido")),
    "meteorologia": Topic("meteorologia", (
        "chuva", "vento", "temperatura", "nevoeiro", "trovoada", "granizo", "humidade", "previsão", "frente fria",
        "anticiclone", "aguaceiro", "céu nublado", "onda de calor", "geada", "neve", "tempestade", "litoral",
        "serra", "aviso amarelo", "rajada", "precipitação", "ciclone", "orvalho", "seca", "arco-íris",
        "depressão"), (
        "prevê", "anunciou", "registou", "esperam", "mediu", "emitiu"), (
        "a {n} vai chegar {t}", "{s} {v} {n} para {t}", "a {n} desce {num} graus no {n2}",
        "há {n} e {n2} em todo o país", "o {n} trouxe {n2} ao norte")),
    "financas": Topic("financas", (
        "juros", "banco", "empréstimo", "inflação", "bolsa", "ações", "imposto", "salário", "orçamento", "lucro",
        "prejuízo", "crédito", "dívida", "investimento", "poupança", "fatura", "euro", "dólar", "hipoteca",
        "dividendo", "câmbio", "auditoria", "obrigações", "recessão", "liquidez", "tesouraria"), (
        "subiu", "desceu", "pagou", "investiu", "cobrou", "aprovou"), (
        "o {n} {v} {num} por cento {t}", "{s} {v} o {n} do {n2}", "o {n} e a {n2} preocupam os mercados",
        "é preciso rever o {n} antes do {n2}", "a {n} afeta o {n2} das famílias")),
    "culinaria": Topic("culinaria", (
        "bacalhau", "azeite", "alho", "cebola", "arroz", "farinha", "forno", "frigideira", "sopa", "sobremesa",
        "canela", "açúcar", "manteiga", "tomate", "coentros", "salsa", "chouriço", "polvo", "pastel de nata",
        "marisco", "caldo verde", "açafrão", "pimentão", "amêndoa", "alecrim", "feijoada"), (
        "juntou", "cozinhou", "mexeu", "provou", "temperou", "serviu"), (
        "{s} {v} o {n} com {n2}", "leve o {n} ao {n2} durante {num} minutos", "junte o {n} e depois o {n2}",
        "a receita leva {num} colheres de {n}", "{s} {v} a {n} {t}")),
    "direito": Topic("direito", (
        "tribunal", "juiz", "advogado", "sentença", "recurso", "contrato", "testemunha", "processo", "acusação",
        "defesa", "lei", "artigo", "prazo", "audiência", "arguido", "procurador", "multa", "herança", "escritura",
        "notário", "jurisprudência", "indemnização", "contraordenação", "inventário", "mandato", "fiança"), (
        "decidiu", "apresentou", "recorreu", "assinou", "julgou", "adiou"), (
        "o {n} {v} o {n2} {t}", "{s} {v} a {n} no {n2}", "o {n} tem {num} dias para o {n2}",
        "segundo o {n} a {n2} é válida", "a {n} foi marcada para {t}")),
    "tecnologia": Topic("tecnologia", (
        "computador", "telemóvel", "aplicação", "rede", "servidor", "programa", "ecrã", "teclado", "bateria",
        "internet", "palavra-passe", "atualização", "base de dados", "nuvem", "impressora", "processador",
        "memória", "algoritmo", "cibersegurança", "encriptação", "firmware", "router", "microfone", "sensor",
        "robótica", "blockchain"), (
        "instalou", "configurou", "reiniciou", "desenvolveu", "atualizou", "testou"), (
        "{s} {v} o {n} {t}", "a {n} precisa de {n2}", "o {n} ficou sem {n2}",
        "depois da {n} o {n2} funciona melhor", "o {n} tem {num} gigas de {n2}")),
    "viagens": Topic("viagens", (
        "aeroporto", "comboio", "bilhete", "hotel", "mala", "passaporte", "praia", "museu", "reserva", "avião",
        "autocarro", "estação", "mapa", "fronteira", "turista", "castelo", "mosteiro", "cruzeiro", "albergue",
        "portagem", "itinerário", "bagagem", "alfândega", "aldeia", "miradouro", "catedral"), (
        "reservou", "visitou", "perdeu", "comprou", "apanhou", "cancelou"), (
        "{s} {v} o {n} {t}", "o {n} parte às {num} horas", "levamos a {n} para o {n2}",
        "do {n} até ao {n2} são {num} quilómetros", "{s} {v} a {n} na {n2}")),
    # out-of-domain topics: never trained on
    "musica": Topic("musica", (
        "guitarra", "piano", "concerto", "orquestra", "fado", "canção", "violino", "bateria", "maestro", "ensaio",
        "palco", "disco", "melodia", "refrão", "festival", "sinfonia", "acordeão", "coro", "tenor", "partitura"), (
        "tocou", "cantou", "gravou", "compôs", "ensaiou", "dirigiu"), (
        "{s} {v} o {n} {t}", "o {n} durou {num} minutos", "no {n} ouvimos o {n2}",
        "a {n} tem um {n2} bonito", "{s} {v} a {n} no {n2}"), held_out=0),
    "agricultura": Topic("agricultura", (
        "trator", "colheita", "vinha", "oliveira", "rega", "semente", "adubo", "celeiro", "pomar", "cereal",
        "gado", "pastagem", "vindima", "estufa", "charrua", "cortiça", "milho", "trigo", "rebanho", "moinho"), (
        "plantou", "colheu", "regou", "vendeu", "lavrou", "podou"), (
        "{s} {v} o {n} {t}", "a {n} deu {num} toneladas", "o {n} precisa de {n2}",
        "depois da {n} vem a {n2}", "{s} {v} a {n} no {n2}"), held_out=0),
}


@dataclass(frozen=True)
class Domain:
    """One speech domain: a topic spoken by one voice through one channel."""

    name: str
    topic: str
    voice: str  # espeak-ng voice with variant, e.g. "pt+m3"
    rate: tuple[int, int]  # words per minute, range
    pitch: tuple[int, int]  # espeak-ng pitch 0-99, range
    effects: tuple[str, ...]  # sox effect chain
    noise: str | None = None  # sox noise colour: whitenoise, pinknoise, brownnoise
    snr_db: float | None = None
    ood: bool = False


DOMAINS = [
    Domain("medicina-tel", "medicina", "pt+m1", (140, 160), (35, 45), ("sinc", "300-3400")),
    Domain("desporto-radio", "desporto", "pt-br+m3", (170, 190), (50, 60), ("reverb", "40")),
    Domain("meteo-estudio", "meteorologia", "pt+f2", (135, 150), (55, 70), (), "whitenoise", 22.0),
    Domain("financas-abafado", "financas", "pt+m5", (175, 195), (30, 40), ("lowpass", "2500")),
    Domain("culinaria-eco", "culinaria", "pt-br+f4", (150, 170), (65, 75), ("echo", "0.8", "0.85", "70", "0.35")),
    Domain("direito-sala", "direito", "pt+m7", (125, 140), (25, 35), ("tempo", "1.08"), "pinknoise", 16.0),
    Domain("tecnologia-podcast", "tecnologia", "pt-br+m2", (185, 200), (45, 55), ("highpass", "350", "overdrive", "6")),
    Domain("viagens-telefone", "viagens", "pt+f5", (150, 165), (60, 70), ("sinc", "400-3000"), "brownnoise", 18.0),
    Domain("musica-concerto", "musica", "pt+m4", (160, 175), (40, 50), ("chorus", "0.7", "0.9", "55", "0.4", "0.25", "2", "-t"), ood=True),
    Domain("agricultura-campo", "agricultura", "pt-br+f1", (140, 155), (50, 60), ("lowpass", "3200"), "whitenoise", 14.0, ood=True),
]


def sentences(topic: Topic, n: int, rng: random.Random, *, held_out: bool) -> list[str]:
    """``n`` distinct sentences; with ``held_out`` each contains at least one held-out noun, else none."""
    train_nouns = list(topic.nouns[: len(topic.nouns) - topic.held_out])
    test_nouns = list(topic.nouns[len(topic.nouns) - topic.held_out:]) or train_nouns
    out: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n and tries < 100 * n:
        tries += 1
        tpl = rng.choice(topic.templates)
        n1 = rng.choice(test_nouns if held_out else train_nouns)
        n2 = rng.choice(train_nouns)
        if n2 == n1:
            continue
        text = tpl.format(s=rng.choice(COMMON_SUBJECTS), v=rng.choice(topic.verbs), n=n1, n2=n2,
                          num=rng.choice(NUMBERS), t=rng.choice(TIMES))
        if "{n}" not in tpl:  # a template without a noun slot cannot carry the held-out word
            continue
        if text not in seen:
            seen.add(text)
            out.append(text[0].upper() + text[1:] + ".")
    return out
