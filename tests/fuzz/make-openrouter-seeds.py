#!/usr/bin/env python3
"""make-openrouter-seeds.py — write the hand-written seed inputs (seed-*) of the
fuzz_openrouter corpus: bodies of OpenRouter's GET /models, /key and /generation as the
real API and routefs-sim answer them, the stored key form, and nonsense around each.

    python3 tests/fuzz/make-openrouter-seeds.py

Rewrites tests/fuzz/corpus/openrouter/seed-* (idempotent); inputs libFuzzer found are
named by their SHA-1 and are left alone.  `make fuzz-merge` always keeps the seed-* files."""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))
D = os.path.join(HERE, "corpus", "openrouter")


def w(name, text):
    if isinstance(text, str):
        text = text.encode()
    with open(os.path.join(D, "seed-" + name), "wb") as f:
        f.write(text)


def j(name, obj, indent=None):
    w(name, json.dumps(obj, indent=indent, ensure_ascii=False))


def model(mid, prompt, completion, **extra):
    m = {"id": mid, "canonical_slug": mid, "name": mid, "created": 1715367049,
         "context_length": 128000,
         "architecture": {"modality": "text->text", "input_modalities": ["text"],
                          "output_modalities": ["text"], "tokenizer": "GPT",
                          "instruct_type": None},
         "pricing": {"prompt": prompt, "completion": completion, "request": "0",
                     "image": "0", "web_search": "0", "internal_reasoning": "0",
                     "input_cache_read": "0", "input_cache_write": "0"},
         "top_provider": {"context_length": 128000, "max_completion_tokens": 16384,
                          "is_moderated": True},
         "per_request_limits": None,
         "supported_parameters": ["max_tokens", "temperature", "tools"],
         "default_parameters": None}
    m.update(extra)
    return m


def models_seeds():
    real = [model("openai/gpt-4o", "0.0000025", "0.00001"),
            model("anthropic/claude-3.5-sonnet", "0.000003", "0.000015"),
            model("google/gemma-2-9b-it:free", "0", "0"),
            model("openrouter/auto", "-1", "-1"),
            model("perplexity/sonar", "0.000001", "0.000001")]
    real[4]["pricing"]["request"] = "0.005"
    j("models-real.json", {"data": real}, indent=2)
    j("models-real-compact.json", {"data": real})
    j("models-sim.json", {"data": [model("a/m1", "0.0000025", "0.00001")]})
    j("models-one.json", {"data": [{"id": "a", "pricing": {"prompt": "0.000001", "completion": "0.000002"}}]})
    j("models-numbers.json", {"data": [{"id": "a", "pricing": {"prompt": 3e-06, "completion": 1.5e-05}}]})
    j("models-exponent.json", {"data": [{"id": "a", "pricing": {"prompt": "3e-6", "completion": "1.5E-05", "request": "5e-3"}}]})
    j("models-bound.json", {"data": [{"id": "a", "pricing": {"prompt": "0.01", "completion": "0.01", "request": "100"}}]})
    j("models-too-high.json", {"data": [{"id": "a", "pricing": {"prompt": "0.0100001", "completion": "0"}}]})
    j("models-negative.json", {"data": [{"id": "a", "pricing": {"prompt": "-0.5", "completion": "0"}}]})
    j("models-minus-one-only.json", {"data": [model("openrouter/auto", "-1", "-1")]})
    j("models-empty.json", {"data": []})
    j("models-data-object.json", {"data": {"id": "a"}})
    j("models-bare-array.json", [model("a", "0", "0")])
    j("models-no-pricing.json", {"data": [{"id": "a"}, {"id": "b", "pricing": None}]})
    j("models-half-priced.json", {"data": [{"id": "a", "pricing": {"prompt": "0.000001"}},
                                          {"id": "b", "pricing": {"prompt": "0", "completion": "0"}}]})
    j("models-dup.json", {"data": [{"id": "a", "pricing": {"prompt": "0", "completion": "0"}},
                                   {"id": "a", "pricing": {"prompt": "0.000001", "completion": "0"}}]})
    j("models-bad-ids.json", {"data": [{"id": "", "pricing": {"prompt": "0", "completion": "0"}},
                                       {"id": 5, "pricing": {"prompt": "0", "completion": "0"}},
                                       {"id": "x" * 300, "pricing": {"prompt": "0", "completion": "0"}},
                                       {"id": "ok\u00e9", "pricing": {"prompt": "0", "completion": "0"}}]})
    w("models-bad-id-bytes.json", b'{"data": [{"id": "a\x01\xff\xfe", "pricing": {"prompt": "0", "completion": "0"}}, {"id": "b", "pricing": {"prompt": "0", "completion": "0"}}]}')
    for i, v in enumerate(["abc", "NaN", "inf", "1e999", "0x10", " 1", "1 ", "+1e-6", ".5e-6",
                           "5.e-6", "-0", "1e-99999", "1e99999", "", "-", "e5", "1e", "1e+",
                           "00000.0000010", "1" * 70]):
        j("models-price-%02d.json" % i, {"data": [{"id": "a", "pricing": {"prompt": v, "completion": "0"}}]})
    j("models-price-types.json", {"data": [{"id": "a", "pricing": {"prompt": {}, "completion": []}}]})
    j("models-price-bool.json", {"data": [{"id": "a", "pricing": {"prompt": True, "completion": "0"}}]})
    w("models-price-huge-number.json", '{"data": [{"id": "a", "pricing": {"prompt": 1e999, "completion": 0}}]}')
    w("models-truncated.json", json.dumps({"data": real})[:700])
    w("models-trailing.json", json.dumps({"data": real[:1]}) + " {}")
    w("models-html.html", "<html><body><h1>502 Bad Gateway</h1></body></html>")
    w("models-nul.json", b'{"data": [{"id": "a\x00b", "pricing": {"prompt": "0", "completion": "0"}}]}')
    w("models-nul-escape.json", '{"data": [{"id": "a\\u0000b", "pricing": {"prompt": "0", "completion": "0"}}]}')
    j("models-many.json", {"data": [{"id": "m/%d" % i, "pricing": {"prompt": "0.00000%d" % (i % 10), "completion": "0"}} for i in range(300)]})
    w("models-deep.json", '{"data": [{"id": "a", "pricing": {"prompt": "0", "completion": "0"}, "x": ' + "[" * 2000 + "]" * 2000 + "}]}")
    w("models-dup-keys.json", '{"data": [], "data": [{"id": "a", "pricing": {"prompt": "0", "completion": "0", "prompt": "-5"}}]}')
    w("models-bom.json", b"\xef\xbb\xbf" + json.dumps({"data": real[:1]}).encode())


KEY_REAL = {"label": "sk-or-v1-116...0ce", "limit": 5, "limit_reset": "monthly",
            "limit_remaining": 4.8984355238, "include_byok_in_limit": False,
            "usage": 0.1015644762, "usage_daily": 0.01, "usage_weekly": 0.05,
            "usage_monthly": 0.1015644762, "byok_usage": 0, "byok_usage_daily": 0,
            "byok_usage_weekly": 0, "byok_usage_monthly": 0, "is_free_tier": False,
            "is_provisioning_key": False, "rate_limit": {"requests": 50, "interval": "10s"},
            "free_model_daily_requests": {"used": 3, "limit": 1000, "remaining": 997},
            "expires_at": None}


def key_seeds():
    j("key-real.json", {"data": KEY_REAL}, indent=2)
    j("key-docs-old.json", {"data": {"label": "sk-or-v1-116...0ce", "limit": 5, "usage": 0.1015644762,
                                     "is_provisioning_key": False, "limit_remaining": 4.8984355238,
                                     "is_free_tier": False, "rate_limit": {"requests": 50, "interval": "10s"}}})
    j("key-sim.json", {"data": {"label": "sim-key", "limit": 10, "limit_reset": "weekly", "limit_remaining": 9.9999,
                                "include_byok_in_limit": False, "usage": 0.0001, "usage_daily": 0.0001,
                                "usage_weekly": 0.0001, "usage_monthly": 0.0001, "byok_usage": 0,
                                "byok_usage_daily": 0, "byok_usage_weekly": 0, "byok_usage_monthly": 0,
                                "is_free_tier": False, "is_provisioning_key": False,
                                "rate_limit": {"requests": -1, "interval": "10s"}, "expires_at": None,
                                "byok_scope": {"limit": 3}}})
    j("key-unlimited.json", {"data": {"label": "sim-key", "limit": None, "limit_reset": None,
                                      "limit_remaining": None, "usage": 0, "is_free_tier": True}})
    j("key-over.json", {"data": {"limit": 1, "limit_remaining": -0.5, "usage": 1.5, "limit_reset": "daily"}})
    j("key-minimal.json", {"data": {"limit": None, "usage": 0}})
    j("key-bad-reset.json", {"data": {"limit": 1, "usage": 0, "limit_reset": "hourly"}})
    for i, v in enumerate(["5", -5, 1e13, None, True, [], {}]):
        j("key-limit-%d.json" % i, {"data": {"limit": v, "usage": 0}})
    for i, v in enumerate(["1", -1, 1e13, None, False]):
        j("key-usage-%d.json" % i, {"data": {"limit": None, "usage": v}})
    w("key-usage-inf.json", '{"data": {"limit": null, "usage": 1e999}}')
    j("key-no-limit.json", {"data": {"usage": 1}})
    j("key-no-data.json", {"limit": 1, "usage": 1})
    j("key-data-array.json", {"data": [KEY_REAL]})
    extras = {"limit": None, "usage": 0}
    for i in range(200):
        extras["scope_%03d" % i] = {"used": i, "limit": 1000, "name": "s%d" % i, "key": "sk-or-%d" % i}
    j("key-many-extras.json", {"data": extras})
    nested = {"limit": None, "usage": 0, "flat": {"a": 1, "b": {"c": 2}, "d": [1], "e": "x" * 100,
                                                   "f": "ok", "g": "sk-secret", "h": None, "i": True}}
    j("key-nested-extras.json", {"data": nested})
    j("key-wide-extra.json", {"data": {"limit": None, "usage": 0, "wide": {"k%d" % i: i for i in range(100)}}})
    w("key-extra-names.json", b'{"data": {"limit": null, "usage": 0, "\xff": 1, "a\\u0001": 2, "\\"q\\\\": 3, "label": "sk-or-v1-abc"}}')
    w("key-dup-keys.json", '{"data": {"limit": 1, "usage": 0, "limit": -3, "extra": 1, "extra": 2}}')
    w("key-truncated.json", json.dumps({"data": KEY_REAL})[:120])
    w("key-error-401.json", '{"error":{"code":401,"message":"No auth credentials found"}}')
    # the stored form (or_key_info_json)
    j("key-stored.json", {"byok_usage": 0, "rate_limit": {"requests": 50, "interval": "10s"},
                          "limit": 5, "limit_remaining": 4.9, "limit_reset": "monthly", "usage": 0.1,
                          "usage_daily": 0.01, "usage_weekly": None, "usage_monthly": 0.1,
                          "is_free_tier": False, "fetched_at": "2026-12-01T12:00:00.123Z",
                          "fetched_ms": 1796126400123})
    j("key-stored-bad-time.json", {"limit": None, "usage": 0, "fetched_ms": -5, "fetched_at": 7})
    j("key-stored-huge-time.json", {"limit": None, "usage": 0, "fetched_ms": 1e300})


GEN_REAL = {"id": "gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG",
            "upstream_id": "chatcmpl-791bcf62-080e-4568-87d0-94c72e3b4946",
            "total_cost": 0.0015, "cache_discount": 0.0002, "upstream_inference_cost": 0.0012,
            "created_at": "2024-07-15T23:33:19.433273+00:00", "model": "sao10k/l3-stheno-8b",
            "app_id": 12345, "streamed": True, "cancelled": False, "provider_name": "Infermatic",
            "latency": 1250, "moderation_latency": 50, "generation_time": 1200,
            "finish_reason": "stop", "native_finish_reason": "STOP", "tokens_prompt": 10,
            "tokens_completion": 25, "native_tokens_prompt": 10, "native_tokens_completion": 25,
            "native_tokens_completion_images": 0, "native_tokens_reasoning": 5,
            "native_tokens_cached": 3, "num_media_prompt": 1, "num_media_completion": 0,
            "num_search_results": 5, "origin": "https://openrouter.ai/", "usage": 0.0015,
            "is_byok": False, "external_user": "user-123", "api_type": "completions",
            "router": "openrouter/auto", "service_tier": "priority",
            "provider_responses": [{"endpoint_id": "e1", "model_permaslug": "sao10k/l3-stheno-8b",
                                    "provider_name": "DeepInfra", "status": 503, "latency": 220,
                                    "is_byok": False},
                                   {"provider_name": "Infermatic", "status": 200, "latency": 1030}]}


def gen_seeds():
    j("gen-real.json", {"data": GEN_REAL}, indent=2)
    g = dict(GEN_REAL, id="gen-fuzz")
    j("gen-expected-id.json", {"data": g})
    j("gen-old.json", {"data": {"id": "gen-1737842317-9ifH6Yzo5icEdfD0I8SI", "upstream_id": None,
                                "total_cost": 0, "cache_discount": None, "provider_name": "Google AI Studio",
                                "created_at": "2025-01-25T21:58:42.249238+00:00",
                                "model": "google/gemini-2.0-flash-thinking-exp-01-21:free", "app_id": 167635,
                                "streamed": True, "cancelled": False, "latency": 3134,
                                "moderation_latency": None, "generation_time": 1, "tokens_prompt": 10,
                                "tokens_completion": 30, "native_tokens_prompt": 4,
                                "native_tokens_completion": 521, "native_tokens_reasoning": None,
                                "num_media_prompt": None, "num_media_completion": None,
                                "num_search_results": None, "origin": "https://openrouter.ai/",
                                "is_byok": False, "finish_reason": "stop", "native_finish_reason": "STOP",
                                "usage": 0}})
    j("gen-sim.json", {"data": {"id": "sim-1", "upstream_id": "chatcmpl-sim-1", "total_cost": 4.25e-05,
                                "cache_discount": None, "upstream_inference_cost": 4.25e-05,
                                "created_at": "2026-12-01T21:25:29.003323+00:00", "model": "a/m1",
                                "app_id": None, "streamed": False, "cancelled": False,
                                "provider_name": "Prov-A", "latency": 1, "moderation_latency": 0,
                                "generation_time": 1, "finish_reason": "stop", "native_finish_reason": "stop",
                                "tokens_prompt": 1, "tokens_completion": 4, "native_tokens_prompt": 1,
                                "native_tokens_completion": 4, "native_tokens_completion_images": 0,
                                "native_tokens_reasoning": 0, "native_tokens_cached": 0,
                                "num_media_prompt": 0, "num_media_completion": 0, "num_search_results": 0,
                                "origin": "", "usage": 4.25e-05, "is_byok": False,
                                "external_user": "pipeline:x", "api_type": "completions", "router": None,
                                "service_tier": None, "session_id": "s1",
                                "provider_responses": [{"endpoint_id": "sim-Sim", "model_permaslug": "bad/m0",
                                                        "provider_name": "Sim", "status": 503, "latency": 0,
                                                        "is_byok": False},
                                                       {"endpoint_id": "sim-Prov-A", "model_permaslug": "a/m1",
                                                        "provider_name": "Prov-A", "status": 200, "latency": 0,
                                                        "is_byok": False}]}})
    j("gen-stream-cancelled.json", {"data": {"id": "gen-2", "streamed": True, "cancelled": True,
                                             "finish_reason": None, "native_finish_reason": None,
                                             "provider_responses": None}})
    w("gen-404.json", '{"error":{"code":404,"message":"Generation not found"}}')
    j("gen-empty-data.json", {"data": {}})
    j("gen-data-array.json", {"data": [GEN_REAL]})
    j("gen-wrong-types.json", {"data": {"id": 7, "total_cost": "0.1", "latency": -5, "generation_time": 1e300,
                                        "provider_name": ["x"], "streamed": "yes", "model": None,
                                        "provider_responses": {"status": 200}}})
    w("gen-bad-strings.json", b'{"data": {"id": "gen-fuzz", "provider_name": "a\\u0007b", "model": "\xff\xfe", "finish_reason": "' + b"x" * 300 + b'", "service_tier": "ok\xc3\xa9"}}')
    j("gen-many-hops.json", {"data": {"id": "gen-fuzz", "provider_responses":
                                      [{"status": 200 + i, "latency": i, "provider_name": "P%d" % i} for i in range(100)] + [1, "x", None, []]}})
    j("gen-hop-junk.json", {"data": {"id": "gen-fuzz", "provider_responses": [{"status": "503", "latency": -1,
                                                                               "provider_name": 5, "extra": {}}]}})
    w("gen-huge-numbers.json", '{"data": {"id": "gen-fuzz", "latency": 1e999, "tokens_prompt": 1e16, "native_tokens_prompt": 123456789012345, "total_cost": -0.0}}')
    w("gen-trailing.json", json.dumps({"data": GEN_REAL}) + "garbage")
    w("gen-truncated.json", json.dumps({"data": GEN_REAL})[:400])
    w("gen-dup-keys.json", '{"data": {"id": "gen-fuzz", "provider_name": "A", "provider_name": "B", "total_cost": 1, "total_cost": -1}}')
    w("gen-deep.json", '{"data": {"id": "gen-fuzz", "router": ' + "[" * 1500 + "]" * 1500 + "}}")


def main():
    os.makedirs(D, exist_ok=True)
    models_seeds()
    key_seeds()
    gen_seeds()


if __name__ == "__main__":
    main()
