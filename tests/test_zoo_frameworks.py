"""The benign zoo with the frameworks themselves (``-m zoo``; install ``.[zoo]``).

Real artifacts from torch (every save form), transformers, PEFT, sentence-transformers,
diffusers, Lightning, Keras 3, xgboost, lightgbm, catboost, SentencePiece, spaCy, gensim and
pandas, made at test time with tiny random weights and no network. Each layout must pass the
default gate with no finding at MEDIUM or above, and ``--strict`` must skip nothing but text.
A framework that is not installed fails its test (the ``zoo`` extra installs them all): the
marker keeps them out of the default run, never a silent skip.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from supplychain.core.model import ArtifactKind
from supplychain.engine import ScanOptions, scan_paths
from tests.test_zoo import assert_benign, kinds

pytestmark = pytest.mark.zoo


@pytest.fixture(autouse=True)
def _framework_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline hub and the torch Keras backend for these tests only (collection must not leak
    them into other modules: the provenance tests talk to a fake Hub on loopback)."""
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


RNG = np.random.default_rng(0)
CORPUS = "\n".join(
    f"the quick brown fox {i} jumps over the lazy dog while model {i * 7} trains"
    for i in range(300)
)


def _xy() -> tuple[np.ndarray, np.ndarray]:
    x = RNG.standard_normal((60, 4))
    return x, (x[:, 0] + 0.1 * x[:, 1] > 0).astype(int)


# --------------------------------------------------------------------------------------------
# torch


def _module() -> object:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def build_torch_save_forms(d: Path) -> None:
    import torch

    model = _module()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # type: ignore[attr-defined]
    model(torch.randn(3, 4)).sum().backward()  # type: ignore[operator]
    opt.step()
    sd = model.state_dict()  # type: ignore[attr-defined]
    torch.save(sd, d / "state_dict.pt")
    torch.save(sd, d / "legacy.pt", _use_new_zipfile_serialization=False)
    ckpt = {"epoch": 3, "model": sd, "optimizer": opt.state_dict(), "lr": 1e-3, "best": 0.5}
    torch.save(ckpt, d / "checkpoint.pth")
    torch.save(ckpt, d / "checkpoint_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(model, d / "whole_module.pt")
    # Storage sizes that once tripped the legacy layout parser: empty, odd, views, many dtypes.
    tensors = {
        "empty": torch.zeros(0),
        "one": torch.ones(1, dtype=torch.float16),
        "odd": torch.arange(7, dtype=torch.int8),
        "view": torch.arange(100.0)[10:20],
        "bf16": torch.ones(3, dtype=torch.bfloat16),
        "bool": torch.tensor([True, False]),
        "i64": torch.arange(5),
        "c64": torch.ones(2, dtype=torch.complex64),
    }
    torch.save(tensors, d / "tensors.pt")
    torch.save(tensors, d / "tensors_legacy.pt", _use_new_zipfile_serialization=False)


def build_torchscript(d: Path) -> None:
    import torch

    model = _module()
    torch.jit.save(torch.jit.script(model), str(d / "scripted.pt"))
    torch.jit.save(torch.jit.trace(model, torch.randn(2, 4)), str(d / "traced.pt"))


def build_torch_export(d: Path) -> None:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)
            self.register_buffer("shift", torch.zeros(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.lin(x)) + self.shift

    program = torch.export.export(Net(), (torch.randn(3, 4),))
    torch.export.save(program, str(d / "model.pt2"))


def test_torch_export_archive_is_identified(tmp_path: Path) -> None:
    build_torch_export(tmp_path)
    got = kinds(scan_paths([tmp_path], ScanOptions(jobs=1)))
    assert got["model.pt2"] is ArtifactKind.TORCH_EXPORT, got


# --------------------------------------------------------------------------------------------
# transformers, PEFT, sentence-transformers, diffusers, Lightning


def _tiny_llama() -> object:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def _train_sentencepiece(d: Path, prefix: str) -> Path:
    import sentencepiece as spm

    corpus = d / "corpus.txt"
    corpus.write_text(CORPUS)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(d / prefix), vocab_size=60, model_type="unigram"
    )
    corpus.unlink()
    (d / f"{prefix}.vocab").unlink()
    return d / f"{prefix}.model"


def build_llama2(d: Path) -> None:
    model = _tiny_llama()
    model.save_pretrained(d)  # type: ignore[attr-defined]
    model.generation_config.save_pretrained(d)  # type: ignore[attr-defined]
    _train_sentencepiece(d, "tokenizer")
    (d / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True})
    )


def build_llama_sharded_and_bin(d: Path) -> None:
    import torch

    model = _tiny_llama()
    model.save_pretrained(d / "sharded", max_shard_size="20KB")  # type: ignore[attr-defined]
    # transformers 4's safe_serialization=False: torch.save of the state dict.
    (d / "bin").mkdir()
    torch.save(model.state_dict(), d / "bin" / "pytorch_model.bin")  # type: ignore[attr-defined]
    model.config.save_pretrained(d / "bin")  # type: ignore[attr-defined]


def build_t5(d: Path) -> None:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=64,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).save_pretrained(d)
    _train_sentencepiece(d, "spiece")


def build_trainer_outputs(d: Path) -> None:
    import torch
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(d), report_to=[], use_cpu=True)
    torch.save(args, d / "training_args.bin")
    model = _tiny_llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # type: ignore[attr-defined]
    torch.save(opt.state_dict(), d / "optimizer.pt")
    sched = torch.optim.lr_scheduler.LinearLR(opt)
    torch.save(sched.state_dict(), d / "scheduler.pt")
    torch.save(
        {"python": 1, "numpy": np.random.get_state(), "cpu": torch.get_rng_state()},
        d / "rng_state.pth",
    )
    (d / "trainer_state.json").write_text(json.dumps({"global_step": 1, "log_history": []}))


def build_peft(d: Path) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_tiny_llama(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))  # type: ignore[arg-type]
    model.save_pretrained(d)


def _tiny_bert(d: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    path = d / "bert"
    config = BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    BertModel(config).save_pretrained(path)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(97, 123)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    return path


def build_sentence_transformers(d: Path) -> None:
    from sentence_transformers import SentenceTransformer, models

    bert = _tiny_bert(d / "src")
    word = models.Transformer(str(bert), max_seq_length=16)
    pooling = models.Pooling(word.get_word_embedding_dimension())
    SentenceTransformer(modules=[word, pooling]).save(str(d / "st"))
    import shutil

    shutil.rmtree(d / "src")


def build_diffusers(d: Path) -> None:
    from diffusers import UNet2DModel

    UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(8, 8), norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    ).save_pretrained(d / "unet")  # fmt: skip


def build_lightning(d: Path) -> None:
    import pytorch_lightning as pl
    import torch

    class Lit(pl.LightningModule):
        def __init__(self, hidden: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch: list[torch.Tensor], _idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x = torch.randn(16, 4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1]), batch_size=8)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(d / "run"),
    )  # fmt: skip
    trainer.fit(Lit(), data)
    trainer.save_checkpoint(str(d / "model.ckpt"))
    import shutil

    shutil.rmtree(d / "run", ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Keras 3, gradient boosting, spaCy, gensim, pandas


def build_keras(d: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(1)])  # fmt: skip
    model.compile(optimizer="adam", loss="mse")
    model.save(d / "model.keras")
    model.save_weights(d / "model.weights.h5")


def build_xgboost(d: Path) -> None:
    import xgboost as xgb

    x, y = _xy()
    model = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
    model.save_model(d / "model.json")
    model.save_model(d / "model.ubj")
    model.get_booster().save_model(d / "booster.json")


def build_catboost(d: Path) -> None:
    import catboost

    x, y = _xy()
    model = catboost.CatBoostClassifier(
        iterations=3, depth=2, verbose=False, allow_writing_files=False
    ).fit(x, y)
    model.save_model(str(d / "model.cbm"))
    model.save_model(str(d / "model.json"), format="json")


def build_lightgbm(d: Path) -> None:
    import lightgbm as lgb

    x, y = _xy()
    model = lgb.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1).fit(x, y)
    model.booster_.save_model(str(d / "model.txt"))
    (d / "model.json").write_text(json.dumps(model.booster_.dump_model()))


def build_gradient_boosting_pickled(d: Path) -> None:
    import joblib
    import lightgbm as lgb
    import xgboost as xgb

    x, y = _xy()
    joblib.dump(xgb.XGBClassifier(n_estimators=2, max_depth=2).fit(x, y), d / "xgb.joblib")
    joblib.dump(lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(x, y), d / "lgb.joblib")


def build_spacy(d: Path) -> None:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("ner").add_label("ORG")  # type: ignore[attr-defined]
    textcat = nlp.add_pipe("textcat")
    textcat.add_label("POS")  # type: ignore[attr-defined]
    textcat.add_label("NEG")  # type: ignore[attr-defined]
    nlp.initialize()
    nlp.vocab.set_vector("apple", np.ones(4, dtype="f"))
    nlp.to_disk(d / "pipeline")


def test_spacy_pipeline_files_are_identified(tmp_path: Path) -> None:
    build_spacy(tmp_path)
    got = kinds(scan_paths([tmp_path], ScanOptions(jobs=1)))
    for name in ("tokenizer", "ner/model", "ner/moves", "textcat/model", "vocab/key2row"):
        assert got[f"pipeline/{name}"] is ArtifactKind.MSGPACK, (name, got)


def build_gensim(d: Path) -> None:
    from gensim.models import FastText, Word2Vec
    from gensim.models.fasttext import save_facebook_model

    sentences = [["the", "cat", "sat"], ["the", "dog", "ran"], ["a", "cat", "ran"]] * 10
    w2v = Word2Vec(sentences, vector_size=8, min_count=1, epochs=1, seed=0, workers=1)
    w2v.wv.save_word2vec_format(str(d / "vectors.bin"), binary=True)
    w2v.wv.save_word2vec_format(str(d / "vectors.txt"))
    ft = FastText(sentences, vector_size=8, min_count=1, epochs=1, seed=0, workers=1)
    save_facebook_model(ft, str(d / "fasttext.bin"))


def build_gensim_native(d: Path) -> None:
    from gensim.models import Word2Vec

    sentences = [["the", "cat", "sat"], ["the", "dog", "ran"]] * 10
    w2v = Word2Vec(sentences, vector_size=8, min_count=1, epochs=1, seed=0, workers=1)
    w2v.save(str(d / "word2vec.model"))
    w2v.wv.save(str(d / "vectors.kv"))


def test_word_vector_files_are_identified(tmp_path: Path) -> None:
    build_gensim(tmp_path)
    got = kinds(scan_paths([tmp_path], ScanOptions(jobs=1)))
    assert got["vectors.bin"] is ArtifactKind.WORD2VEC
    assert got["vectors.txt"] is ArtifactKind.WORD2VEC
    assert got["fasttext.bin"] is ArtifactKind.FASTTEXT


def build_pandas(d: Path) -> None:
    import pandas as pd

    df = pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1, 0], "x": [0.1, 0.2, 0.3]})
    df.to_parquet(d / "df.parquet")
    df.to_feather(d / "df.feather")
    df.to_csv(d / "df.csv", index=False)
    df.to_json(d / "df.jsonl", orient="records", lines=True)
    df.to_pickle(d / "df.pkl")


def build_sklearn_onnx_free_pickles(d: Path) -> None:
    # A Trainer-style pickle of plain Python and numpy objects (no framework classes).
    (d / "meta.pkl").write_bytes(
        pickle.dumps({"classes": np.array(["a", "b"]), "threshold": 0.5}, protocol=4)
    )


LAYOUTS: dict[str, Callable[[Path], None]] = {
    "torch-save-forms": build_torch_save_forms,
    "torchscript": build_torchscript,
    "torch-export": build_torch_export,
    "llama2": build_llama2,
    "llama-sharded-and-bin": build_llama_sharded_and_bin,
    "t5": build_t5,
    "trainer-outputs": build_trainer_outputs,
    "peft": build_peft,
    "sentence-transformers": build_sentence_transformers,
    "diffusers": build_diffusers,
    "lightning": build_lightning,
    "keras": build_keras,
    "xgboost": build_xgboost,
    "catboost": build_catboost,
    "lightgbm": build_lightgbm,
    "gradient-boosting-pickled": build_gradient_boosting_pickled,
    "spacy": build_spacy,
    "gensim": build_gensim,
    "gensim-native": build_gensim_native,
    "pandas": build_pandas,
    "numpy-pickle": build_sklearn_onnx_free_pickles,
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_framework_layout_passes_default_and_strict(tmp_path: Path, layout: str) -> None:
    LAYOUTS[layout](tmp_path)
    assert_benign(tmp_path)


GENSIM_FIXTURES = {
    "euclidean_vectors.bin": ArtifactKind.WORD2VEC,
    "poincare_vectors.bin": ArtifactKind.WORD2VEC,
    "high_precision.kv.bin": ArtifactKind.WORD2VEC,
    "high_precision.kv.txt": ArtifactKind.WORD2VEC,
    "lee_fasttext.vec": ArtifactKind.WORD2VEC,
    "crime-and-punishment.vec": ArtifactKind.WORD2VEC,
    "toy-model.bin": ArtifactKind.FASTTEXT,
    "lee_fasttext.bin": ArtifactKind.FASTTEXT,
    "lee_fasttext_new.bin": ArtifactKind.FASTTEXT,
    "crime-and-punishment.bin": ArtifactKind.FASTTEXT,
}


def test_gensim_shipped_vector_fixtures_are_identified_and_clean(tmp_path: Path) -> None:
    # Files other people wrote (gensim's own test data, several tool versions), not ours.
    import shutil

    from gensim.test.utils import datapath

    for name in GENSIM_FIXTURES:
        shutil.copy(datapath(name), tmp_path / name)
    report = assert_benign(tmp_path)
    got = kinds(report)
    assert {n: got[n] for n in GENSIM_FIXTURES} == GENSIM_FIXTURES
