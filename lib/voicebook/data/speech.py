"""The speech corpus every speech chapter shares: one item type, a generator, and the readers.

:func:`load_corpus` returns a :class:`SpeechCorpus` of :class:`Utterance` items, either

- generated offline with espeak-ng (the default; cached on disk with a manifest): 22 speakers
  in 8 languages, US and UK English (two speakers each with the most data, as in the
  multilingual TTS paper, plus six more each for voice conversion, in several accents), French,
  Italian, German, Spanish (one female each) and Polish, Brazilian Portuguese (one female each,
  little data: the adaptation targets); or
- read from a local copy of VCTK or VCC2018 (``data_dir``).

Sentences come from a small grammar with word lists per language (deterministic by seed). In
each language a held-out *test* set and a *dev* set are spoken by every speaker (parallel
sentences); *train* sentences differ from speaker to speaker (non-parallel), as the voice
conversion chapters need. Every generated utterance carries its text, language, speaker and
espeak's phoneme timings. Audio: 22050 Hz mono 16-bit wav.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import audio
from ..checks import CorpusError
from . import cache
from .espeak import SAMPLE_RATE, synthesize_words

__all__ = ["Utterance", "Speaker", "SpeechCorpus", "SPEAKERS", "SIZES", "make_sentences",
           "plan_corpus", "generate_corpus", "load_corpus", "corpus_from_manifest", "file_utterance"]

GENERATOR, VERSION = "speech", 2   # 2: the manifest carries each phone's word


# ----------------------------------------------------------------------------- item types

@dataclass(frozen=True)
class Utterance:
    """One recording.

    ``phonemes`` is a tuple of ``(phone, start_s, end_s)`` in seconds (espeak's phoneme events;
    empty for real corpora); ``words`` as long, the index of the word in the utterance each
    phone was made from (:func:`~voicebook.data.espeak.synthesize_words`; empty where unknown).
    ``sentence_id``: the same id means the same text (parallel data).
    ``duration`` is in seconds, ``sr`` in Hz.
    """

    id: str
    speaker: str
    language: str
    text: str
    sentence_id: str
    path: Path
    sr: int
    sex: str
    split: str
    phonemes: tuple = ()
    duration: float = 0.0
    words: tuple = ()

    def load(self) -> np.ndarray:
        """The samples, float32 ``(samples,)`` at ``self.sr`` Hz."""
        return audio.load(self.path, self.sr)[0]


@dataclass(frozen=True)
class Speaker:
    """A speaker: ``sex`` "F"/"M"; ``voice`` the espeak voice+variant (empty for real corpora),
    ``rate`` (words/minute), ``pitch`` and ``pitch_range`` (espeak units 0..100); ``role``
    says what the generated corpus has them for ("tts", "vc", "adapt"; VCC2018: "source",
    "target"); ``accent`` is free text."""

    id: str
    sex: str
    language: str
    voice: str = ""
    rate: int | None = None
    pitch: int | None = None
    pitch_range: int | None = None
    role: str = ""
    accent: str = ""


@dataclass
class SpeechCorpus:
    """Utterances, their speakers (id -> :class:`Speaker`) and the folder they live in."""

    items: list[Utterance]
    speakers: dict[str, Speaker]
    root: Path
    name: str = ""

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    @property
    def hours(self) -> float:
        """Total duration in hours."""
        return sum(u.duration for u in self.items) / 3600

    @property
    def languages(self) -> list[str]:
        return sorted({u.language for u in self.items})

    def select(self, **filters) -> "SpeechCorpus":
        """The sub-corpus whose items match every filter: ``field=value``, ``field=[values]``
        (any of) or ``field=predicate``, e.g. ``select(language="en-us", split="train")``."""
        names = {f.name for f in dataclasses.fields(Utterance)}
        unknown = set(filters) - names
        if unknown:
            raise ValueError(f"select: unknown field(s) {sorted(unknown)}; fields are {sorted(names)}")
        items = [u for u in self.items if all(_matches(getattr(u, k), v) for k, v in filters.items())]
        used = {u.speaker for u in items}
        return SpeechCorpus(items, {k: s for k, s in self.speakers.items() if k in used}, self.root, self.name)

    def by_speaker(self, speaker: str) -> list[Utterance]:
        return [u for u in self.items if u.speaker == speaker]

    def by_language(self, language: str) -> list[Utterance]:
        return [u for u in self.items if u.language == language]

    def split(self, name: str) -> "SpeechCorpus":
        """``"train"``, ``"dev"`` or ``"test"``."""
        return self.select(split=name)

    def parallel(self, sentence_id: str) -> list[Utterance]:
        """Every utterance of one sentence (one per speaker who said it)."""
        return [u for u in self.items if u.sentence_id == sentence_id]

    def pairs(self, source: str, target: str, split: str | None = "test") -> list[tuple[Utterance, Utterance]]:
        """``(source utterance, target utterance)`` of the same sentences, e.g. to score a
        conversion against the real target; ``split=None`` searches all splits."""
        pool = self if split is None else self.split(split)
        target_by_sentence = {u.sentence_id: u for u in pool.by_speaker(target)}
        return [(u, target_by_sentence[u.sentence_id]) for u in pool.by_speaker(source)
                if u.sentence_id in target_by_sentence]

    def speaker_table(self) -> list[dict]:
        """One row per speaker: its fields plus utterance counts per split and minutes."""
        rows = []
        for spk in self.speakers.values():
            mine = self.by_speaker(spk.id)
            counts = Counter(u.split for u in mine)
            rows.append({**dataclasses.asdict(spk), **{s: counts.get(s, 0) for s in ("train", "dev", "test")},
                         "minutes": round(sum(u.duration for u in mine) / 60, 2)})
        return rows


def file_utterance(path: Path, **fields) -> Utterance:
    """An :class:`Utterance` of an existing audio file: ``sr`` and ``duration`` come from its
    header (for the corpus readers). Raises :class:`CorpusError` for an unreadable file."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError
        raise CorpusError(f"{path}: cannot read the audio header ({err})") from err
    return Utterance(path=Path(path), sr=int(info.samplerate), duration=info.frames / info.samplerate, **fields)


def _matches(value, wanted) -> bool:
    if callable(wanted):
        return bool(wanted(value))
    if isinstance(wanted, (list, tuple, set, frozenset)):
        return value in wanted
    return value == wanted


# ----------------------------------------------------------------------------- speakers

def _spk(id, language, voice, sex, pitch, pitch_range, rate, role, accent=""):
    return Speaker(id, sex, language, voice, rate, pitch, pitch_range, role, accent)


#: The generated corpus' speakers. "tts": the multilingual TTS chapter's training speakers (a
#: female per training language; US and UK English also a male); "adapt": its adaptation
#: targets (little data); "vc": more English speakers for voice conversion.
SPEAKERS: tuple[Speaker, ...] = (
    _spk("en-us-f1", "en-us", "en-us+f3", "F", 52, 60, 165, "tts", "General American"),
    _spk("en-us-m1", "en-us", "en-us+m3", "M", 50, 55, 170, "tts", "General American"),
    _spk("en-us-f2", "en-us", "en-us+f1", "F", 38, 45, 180, "vc", "General American"),
    _spk("en-us-f3", "en-us", "en-us+f4", "F", 76, 70, 155, "vc", "General American"),
    _spk("en-us-f4", "en-us", "en-us-nyc+f5", "F", 45, 50, 175, "vc", "New York City"),
    _spk("en-us-m2", "en-us", "en-us+m1", "M", 76, 50, 160, "vc", "General American"),
    _spk("en-us-m3", "en-us", "en-us+m4", "M", 36, 40, 185, "vc", "General American"),
    _spk("en-us-m4", "en-us", "en-us-nyc+m7", "M", 40, 65, 170, "vc", "New York City"),
    _spk("en-gb-f1", "en-gb", "en+f2", "F", 50, 55, 165, "tts", "Southern British"),
    _spk("en-gb-m1", "en-gb", "en+m2", "M", 46, 50, 160, "tts", "Southern British"),
    _spk("en-gb-f2", "en-gb", "en-gb-x-rp+f5", "F", 32, 60, 170, "vc", "Received Pronunciation"),
    _spk("en-gb-f3", "en-gb", "en-gb-scotland+f1", "F", 72, 45, 175, "vc", "Scottish"),
    _spk("en-gb-f4", "en-gb", "en-gb-x-gbclan+f4", "F", 54, 65, 160, "vc", "Lancaster"),
    _spk("en-gb-m2", "en-gb", "en-gb-x-rp+m5", "M", 70, 55, 175, "vc", "Received Pronunciation"),
    _spk("en-gb-m3", "en-gb", "en-gb-scotland+m6", "M", 40, 45, 165, "vc", "Scottish"),
    _spk("en-gb-m4", "en-gb", "en-gb-x-gbcwmd+m2", "M", 60, 60, 180, "vc", "West Midlands"),
    _spk("fr-f1", "fr", "fr+f4", "F", 50, 55, 170, "tts"),
    _spk("it-f1", "it", "it+f1", "F", 55, 60, 165, "tts"),
    _spk("de-f1", "de", "de+f5", "F", 45, 50, 160, "tts"),
    _spk("es-f1", "es", "es+f2", "F", 52, 55, 175, "tts"),
    _spk("pl-f1", "pl", "pl+f3", "F", 48, 55, 160, "adapt"),
    _spk("pt-br-f1", "pt-br", "pt-br+f4", "F", 56, 60, 165, "adapt"),
)

#: Utterances per speaker: train (distinct sentences per speaker) by role, and the dev and test
#: sets (spoken by every speaker of the language).
SIZES = {
    "smoke": {"train": {"tts": 8, "vc": 6, "adapt": 4}, "dev": 2, "test": 4},
    "standard": {"train": {"tts": 200, "vc": 60, "adapt": 30}, "dev": 10, "test": 20},
    "paper": {"train": {"tts": 1000, "vc": 300, "adapt": 100}, "dev": 50, "test": 50},
}


# ----------------------------------------------------------------------------- sentences

def _w(text: str) -> list[str]:
    return [w.strip() for w in text.split("|")]


# Per text language: subjects (mid-sentence form), verb phrases (one-word verb + object),
# places, times, "and", and templates over S (subject) V (verb) O (object) P (place) T (time).
_GRAMMAR = {
    "en": dict(
        S=_w("the old teacher|my little brother|a young doctor|the tired farmer|the baker|our new neighbour|"
             "the small dog|her best friend|the quiet student|a tall man|the kind nurse|his grandmother|"
             "a clever girl|the captain|the bus driver|Anna|Peter|the old fisherman|my sister|the happy child"),
        VO=_w("reads a long letter|drinks a cup of tea|paints the wooden fence|carries a heavy box|opens the window|"
              "writes a short story|cooks a simple dinner|cleans the kitchen table|finds a red umbrella|"
              "sells fresh bread|plays the piano|waters the flowers|buys a yellow bicycle|watches the evening news|"
              "fixes the old radio|feeds the hungry cats|sings a quiet song|counts the silver coins|"
              "eats a green apple|draws a map of the city"),
        P=_w("in the garden|at the station|near the river|in the kitchen|on the train|at the market|"
             "behind the house|in a small village|by the window|at school|in the park|on the beach"),
        T=_w("every morning|after lunch|on Sunday|late at night|in the evening|today|before breakfast|once a week"),
        AND="and", templates=("S V O P.", "S V O P T.", "T, S V O P.", "S V O P, AND S2 V2 O2."),
    ),
    "fr": dict(
        S=_w("le vieux professeur|ma petite sœur|un jeune médecin|le boulanger|notre voisine|le petit chien|"
             "mon meilleur ami|l'étudiante|l'infirmière|sa grand-mère|le pêcheur|une fille curieuse|"
             "le capitaine|Marie|Paul"),
        VO=_w("lit une longue lettre|boit une tasse de thé|peint la vieille porte|porte une boîte lourde|"
              "ouvre la fenêtre|écrit une courte histoire|prépare un dîner simple|nettoie la table|"
              "trouve un parapluie rouge|vend du pain frais|joue du piano|arrose les fleurs|achète un vélo jaune|"
              "regarde les nouvelles|répare la vieille radio|chante une chanson douce|mange une pomme verte|"
              "dessine une carte de la ville"),
        P=_w("dans le jardin|à la gare|près de la rivière|dans la cuisine|dans le train|au marché|"
             "derrière la maison|dans un petit village|à l'école|dans le parc|sur la plage"),
        T=_w("chaque matin|après le déjeuner|le dimanche|tard le soir|aujourd'hui|avant le petit déjeuner|"
             "une fois par semaine"),
        AND="et", templates=("S V O P.", "S V O P T.", "T, S V O P.", "S V O P, AND S2 V2 O2."),
    ),
    "it": dict(
        S=_w("il vecchio professore|mia sorella|un giovane medico|il fornaio|la nostra vicina|il piccolo cane|"
             "il mio migliore amico|la studentessa|l'infermiera|sua nonna|il pescatore|una ragazza curiosa|"
             "il capitano|Giulia|Marco"),
        VO=_w("legge una lunga lettera|beve una tazza di tè|dipinge la vecchia porta|porta una scatola pesante|"
              "apre la finestra|scrive una breve storia|prepara una cena semplice|pulisce il tavolo|"
              "trova un ombrello rosso|vende pane fresco|suona il pianoforte|innaffia i fiori|"
              "compra una bicicletta gialla|guarda il telegiornale|ripara la vecchia radio|"
              "canta una canzone dolce|mangia una mela verde|disegna una mappa della città"),
        P=_w("nel giardino|alla stazione|vicino al fiume|in cucina|sul treno|al mercato|dietro la casa|"
             "in un piccolo paese|a scuola|nel parco|sulla spiaggia"),
        T=_w("ogni mattina|dopo pranzo|la domenica|tardi la sera|oggi|prima di colazione|una volta alla settimana"),
        AND="e", templates=("S V O P.", "S V O P T.", "T, S V O P.", "S V O P, AND S2 V2 O2."),
    ),
    "de": dict(
        S=_w("der alte Lehrer|meine kleine Schwester|ein junger Arzt|der Bäcker|unsere Nachbarin|der kleine Hund|"
             "mein bester Freund|die Studentin|die Krankenschwester|seine Großmutter|der Fischer|"
             "ein neugieriges Mädchen|der Kapitän|Anna|Thomas"),
        VO=_w("liest einen langen Brief|trinkt eine Tasse Tee|streicht die alte Tür|trägt eine schwere Kiste|"
              "öffnet das Fenster|schreibt eine kurze Geschichte|kocht ein einfaches Abendessen|putzt den Tisch|"
              "findet einen roten Regenschirm|verkauft frisches Brot|spielt Klavier|gießt die Blumen|"
              "kauft ein gelbes Fahrrad|sieht die Nachrichten|repariert das alte Radio|singt ein leises Lied|"
              "isst einen grünen Apfel|zeichnet eine Karte der Stadt"),
        P=_w("im Garten|am Bahnhof|in der Nähe des Flusses|in der Küche|im Zug|auf dem Markt|hinter dem Haus|"
             "in einem kleinen Dorf|in der Schule|im Park|am Strand"),
        T=_w("jeden Morgen|nach dem Mittagessen|am Sonntag|spät am Abend|heute|vor dem Frühstück|einmal pro Woche"),
        AND="und", templates=("S V O P.", "S V T O P.", "T V S O P.", "S V O P, AND S2 V2 O2."),
    ),
    "es": dict(
        S=_w("el viejo profesor|mi hermana pequeña|un joven médico|el panadero|nuestra vecina|el perro pequeño|"
             "mi mejor amigo|la estudiante|la enfermera|su abuela|el pescador|una niña curiosa|el capitán|"
             "Lucía|Carlos"),
        VO=_w("lee una carta larga|bebe una taza de té|pinta la puerta vieja|lleva una caja pesada|abre la ventana|"
              "escribe una historia corta|prepara una cena sencilla|limpia la mesa|encuentra un paraguas rojo|"
              "vende pan fresco|toca el piano|riega las flores|compra una bicicleta amarilla|mira las noticias|"
              "arregla la radio vieja|canta una canción suave|come una manzana verde|dibuja un mapa de la ciudad"),
        P=_w("en el jardín|en la estación|cerca del río|en la cocina|en el tren|en el mercado|detrás de la casa|"
             "en un pueblo pequeño|en la escuela|en el parque|en la playa"),
        T=_w("cada mañana|después del almuerzo|los domingos|tarde por la noche|hoy|antes del desayuno|"
             "una vez por semana"),
        AND="y", templates=("S V O P.", "S V O P T.", "T, S V O P.", "S V O P, AND S2 V2 O2."),
    ),
    "pl": dict(
        S=_w("stary nauczyciel|moja młodsza siostra|młody lekarz|piekarz|nasza sąsiadka|mały pies|"
             "mój najlepszy przyjaciel|studentka|pielęgniarka|jego babcia|rybak|ciekawska dziewczynka|kapitan|"
             "Ania|Tomek"),
        VO=_w("czyta długi list|pije filiżankę herbaty|maluje stare drzwi|niesie ciężkie pudło|otwiera okno|"
              "pisze krótkie opowiadanie|gotuje prosty obiad|wyciera stół|znajduje czerwony parasol|"
              "sprzedaje świeży chleb|gra na pianinie|podlewa kwiaty|kupuje żółty rower|ogląda wiadomości|"
              "naprawia stare radio|śpiewa cichą piosenkę|je zielone jabłko|rysuje mapę miasta"),
        P=_w("w ogrodzie|na dworcu|nad rzeką|w kuchni|w pociągu|na targu|za domem|w małej wsi|w szkole|w parku|"
             "na plaży"),
        T=_w("każdego ranka|po obiedzie|w niedzielę|późnym wieczorem|dzisiaj|przed śniadaniem|raz w tygodniu"),
        AND="a", templates=("S V O P.", "S V O P T.", "T S V O P.", "S V O P, AND S2 V2 O2."),
    ),
    "pt": dict(
        S=_w("o velho professor|minha irmã mais nova|um jovem médico|o padeiro|nossa vizinha|o cachorro pequeno|"
             "meu melhor amigo|a estudante|a enfermeira|sua avó|o pescador|uma menina curiosa|o capitão|Ana|"
             "Pedro"),
        VO=_w("lê uma carta longa|bebe uma xícara de café|pinta a porta velha|carrega uma caixa pesada|abre a janela|"
              "escreve uma história curta|prepara um jantar simples|limpa a mesa|"
              "encontra um guarda-chuva vermelho|vende pão fresco|toca piano|rega as flores|"
              "compra uma bicicleta amarela|assiste ao jornal|conserta o rádio velho|canta uma canção suave|"
              "come uma maçã verde|desenha um mapa da cidade"),
        P=_w("no jardim|na estação|perto do rio|na cozinha|no trem|na feira|atrás da casa|numa cidade pequena|"
             "na escola|no parque|na praia"),
        T=_w("toda manhã|depois do almoço|aos domingos|tarde da noite|hoje|antes do café da manhã|"
             "uma vez por semana"),
        AND="e", templates=("S V O P.", "S V O P T.", "T, S V O P.", "S V O P, AND S2 V2 O2."),
    ),
}


def _text_language(language: str) -> str:
    """The grammar a speaker's language uses: en-us/en-gb -> "en", pt-br -> "pt"."""
    return language.split("-")[0]


def _sentence(g: dict, rng: random.Random) -> str:
    (verb, obj), (verb2, obj2) = (vo.split(" ", 1) for vo in rng.sample(g["VO"], 2))
    subject, subject2 = rng.sample(g["S"], 2)
    slots = {"S": subject, "V": verb, "O": obj, "P": rng.choice(g["P"]), "T": rng.choice(g["T"]),
             "AND": g["AND"], "S2": subject2, "V2": verb2, "O2": obj2}
    words = []
    for token in rng.choice(g["templates"]).split():
        core = token.rstrip(",.")
        words.append(slots.get(core, core) + token[len(core):])
    text = " ".join(words)
    return text[0].upper() + text[1:]


def make_sentences(text_language: str, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences in ``text_language`` ("en", "fr", "it", "de", "es", "pl", "pt"),
    deterministic by seed; the first ``k`` are the same for any ``n >= k``."""
    if text_language not in _GRAMMAR:
        raise ValueError(f"make_sentences: no grammar for {text_language!r}; have {sorted(_GRAMMAR)}")
    rng, seen, out = random.Random(f"sentences/{seed}/{text_language}"), set(), []
    for _ in range(200 * n + 1000):
        if len(out) == n:
            return out
        s = _sentence(_GRAMMAR[text_language], rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    raise ValueError(f"make_sentences: the {text_language!r} grammar gave only {len(out)} distinct sentences of {n}")


# ----------------------------------------------------------------------------- the plan

def _jobs_for_language(speakers: list[Speaker], counts: dict, seed: int) -> dict[str, dict]:
    """Jobs (relpath -> job) for the speakers of one text language: shared test and dev
    sentences first, then a disjoint block of train sentences per speaker."""
    text_language = _text_language(speakers[0].language)
    n_train = [counts["train"][s.role] for s in speakers]
    n_shared = counts["test"] + counts["dev"]
    sentences = make_sentences(text_language, n_shared + sum(n_train), seed)
    shared = [("test", i) for i in range(counts["test"])] + [("dev", i) for i in range(counts["test"], n_shared)]
    jobs, start = {}, n_shared
    for spk, n in zip(speakers, n_train):
        for split, i in [("train", i) for i in range(start, start + n)] + shared:
            job = _job(spk, f"{text_language}-{i:05d}", sentences[i], split, seed)
            jobs[f"wavs/{spk.id}/{job['id']}.wav"] = job
        start += n
    return jobs


def _job(spk: Speaker, sentence_id: str, text: str, split: str, seed: int) -> dict:
    """One utterance to synthesise, with a small per-utterance jitter of rate and pitch
    (+-4 %, +-3) so repeated words are not identical across sentences."""
    utt_id = f"{spk.id}_{sentence_id}"
    rng = random.Random(f"utterance/{seed}/{utt_id}")
    rate = int(round(spk.rate * rng.uniform(0.96, 1.04)))
    pitch = min(100, max(0, spk.pitch + rng.randint(-3, 3)))
    return {"id": utt_id, "speaker": spk.id, "language": spk.language, "text": text, "sentence_id": sentence_id,
            "sex": spk.sex, "split": split,
            "synth": {"voice": spk.voice, "rate": rate, "pitch": pitch, "pitch_range": spk.pitch_range,
                      "seed": rng.randrange(2 ** 31)}}


def plan_corpus(size: str = "smoke", seed: int = 0) -> dict[str, dict]:
    """What :func:`generate_corpus` makes, without audio: relative wav path -> job (utterance
    fields and espeak settings)."""
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose one of {sorted(SIZES)}")
    by_text_language: dict[str, list[Speaker]] = {}
    for spk in SPEAKERS:
        by_text_language.setdefault(_text_language(spk.language), []).append(spk)
    jobs = {}
    for speakers in by_text_language.values():
        jobs.update(_jobs_for_language(speakers, SIZES[size], seed))
    return jobs


def _make_utterance(folder: Path, relpath: str, job: dict) -> dict:
    """Cache worker: synthesise one job into ``folder/relpath``; return its manifest metadata."""
    wav, phones, words = synthesize_words(job["text"], **job["synth"])
    audio.save(Path(folder) / relpath, wav, SAMPLE_RATE)
    return {**job, "samples": len(wav), "phonemes": [[p, round(a, 6), round(b, 6)] for p, a, b in phones],
            "words": words}


# ----------------------------------------------------------------------------- building

def _header(size: str, seed: int, jobs: dict) -> dict:
    """What the cache must match: any change to the plan (sentences, speakers, settings) or to
    the espeak-ng wheel makes a cache made before it stale."""
    plan = hashlib.sha256(json.dumps(jobs, sort_keys=True).encode()).hexdigest()
    params = {"size": size, "speakers": [dataclasses.asdict(s) for s in SPEAKERS], "plan_sha256": plan,
              "espeakng_loader": importlib.metadata.version("espeakng-loader")}
    return cache.describe(GENERATOR, VERSION, params, seed)


def corpus_from_manifest(root: str | Path, manifest: dict | None = None) -> SpeechCorpus:
    """The :class:`SpeechCorpus` described by a generated corpus' ``manifest.json`` in ``root``
    (files are not checked here: :func:`generate_corpus` does that)."""
    root = Path(root)
    manifest = manifest or cache.read_manifest(root)
    header = manifest.get("header") or {}
    if header.get("generator") != GENERATOR or not manifest["files"]:
        raise CorpusError(f"{root}: no generated speech corpus here ({cache.MANIFEST} missing, empty or not "
                          f"made by voicebook.data.speech)")
    speakers = {s["id"]: Speaker(**s) for s in header["params"]["speakers"]}
    items = []
    for rel, entry in sorted(manifest["files"].items()):
        m = entry["meta"]
        items.append(Utterance(
            id=m["id"], speaker=m["speaker"], language=m["language"], text=m["text"], sentence_id=m["sentence_id"],
            path=root / rel, sr=SAMPLE_RATE, sex=m["sex"], split=m["split"],
            phonemes=tuple((p, a, b) for p, a, b in m["phonemes"]), duration=m["samples"] / SAMPLE_RATE,
            words=tuple(m["words"])))
    used = {u.speaker for u in items}
    return SpeechCorpus(items, {k: s for k, s in speakers.items() if k in used}, root,
                        f"espeak-{header['params']['size']}-seed{header['seed']}")


def generate_corpus(root: str | Path, size: str = "smoke", seed: int = 0, workers: int | None = None) -> SpeechCorpus:
    """Generate (or complete, or repair) the espeak corpus in the folder ``root``.

    Files already there and matching the manifest (size and SHA-256) are kept; missing,
    truncated or corrupted ones are made again; a manifest made with another size, seed or
    version is discarded. ``workers`` processes (default: all usable cores). Same seed ->
    byte-identical wavs and manifest.
    """
    jobs = plan_corpus(size, seed)
    manifest = cache.fill(root, _header(size, seed, jobs), jobs, _make_utterance, workers=workers,
                          desc=f"speech corpus ({size})")
    return corpus_from_manifest(root, manifest)


def load_corpus(data_dir: str | Path | None = None, *, size: str = "smoke", seed: int = 0,
                cache_dir: str | Path | None = None, workers: int | None = None) -> SpeechCorpus:
    """The speech corpus of the chapters.

    ``data_dir=None``: the generated corpus of ``size`` ("smoke", "standard", "paper") and
    ``seed``, made on first use in ``cache_dir/speech/<size>-seed<seed>-v<version>`` (default
    ``cache_dir``: ``$VOICEBOOK_CACHE`` or ``~/.cache/voicebook``); a cache whose manifest
    does not match the current plan and espeak-ng wheel is made again. Otherwise
    ``data_dir`` is a local copy of VCTK (``wav48/`` or ``wav48_silence_trimmed/``, ``txt/``,
    ``speaker-info.txt``), of VCC2018 (``vcc2018_training/``, ``vcc2018_evaluation/``), or a
    generated corpus folder (with its ``manifest.json``).
    """
    from . import vcc2018, vctk

    if data_dir is None:
        if size not in SIZES:
            raise ValueError(f"unknown corpus size {size!r}; choose one of {sorted(SIZES)}")
        folder = Path(cache_dir or cache.default_cache_dir()) / "speech" / f"{size}-seed{seed}-v{VERSION}"
        return generate_corpus(folder, size, seed, workers)
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise CorpusError(f"{data_dir}: no such folder (expected a local copy of VCTK or VCC2018)")
    if (root := vctk.find_root(data_dir)) is not None:
        return vctk.read_vctk(root)
    if (root := vcc2018.find_root(data_dir)) is not None:
        return vcc2018.read_vcc2018(root)
    header = cache.read_manifest(data_dir).get("header") or {}
    if header.get("generator") == GENERATOR:  # a generated corpus: check it, repair it if needed
        return generate_corpus(data_dir, header["params"]["size"], header["seed"], workers)
    raise CorpusError(
        f"{data_dir}: not a speech corpus voicebook can read. Looked for VCTK ({vctk.LAYOUT}), "
        f"VCC2018 ({vcc2018.LAYOUT}) and a generated corpus ({cache.MANIFEST}), in the folder and "
        f"its VCTK-Corpus / VCTK-Corpus-0.92 sub-folders.")
