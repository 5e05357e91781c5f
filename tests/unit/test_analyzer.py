"""gpuvec.text: Milvus 2.6 analyzers (tokenizers, filters, built-in types, validation).

Expected token lists come from Milvus's documented examples where there is one (the
docs' "Expected output"), otherwise from the tokenizer's definition.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import regex

from gpuvec.errors import InvalidArgumentError
from gpuvec.text import Analyzer, analyzer, check_analyzer_params

DOC_TEXT = "The Milvus vector database is built for scale!"
FOX = "The quick brown fox's 3.14 jumps!"


def toks(params: dict | str | None, text: str) -> list[str]:
    return analyzer(params).tokens(text)


def custom(*filters: object, tokenizer: object = "standard") -> dict:
    return {"tokenizer": tokenizer, "filter": list(filters)}


# --- the standard analyzer and tokenizer ---------------------------------------------------
def test_standard_analyzer_docs_example() -> None:
    assert toks({"type": "standard"}, DOC_TEXT) == [
        "the", "milvus", "vector", "database", "is", "built", "for", "scale"]  # fmt: skip


def test_default_analyzer_is_standard() -> None:
    assert analyzer().params == {"type": "standard"}
    assert toks(None, "Hello, World!") == ["hello", "world"]


def test_standard_splits_at_every_non_alphanumeric_character() -> None:
    # Milvus's standard tokenizer: maximal runs of letters/digits (apostrophes and the
    # decimal point split), lowercased by the standard analyzer.
    assert toks(None, FOX) == ["the", "quick", "brown", "fox", "s", "3", "14", "jumps"]
    assert toks(custom(), "Brown-Foxes dog_s 中文 naïve") == [
        "Brown", "Foxes", "dog", "s", "中文", "naïve"]  # fmt: skip


def test_standard_uax29_keeps_words_with_inner_punctuation() -> None:
    uax = custom("lowercase", tokenizer={"type": "standard", "uax29": True})
    assert toks(uax, FOX) == ["the", "quick", "brown", "fox's", "3.14", "jumps"]
    assert toks(uax, "O'Reilly can't jump 32.3 feet from 216.239.63.104") == [
        "o'reilly", "can't", "jump", "32.3", "feet", "from", "216.239.63.104"]  # fmt: skip


def test_standard_uax29_splits_ideographs_and_keeps_emoji() -> None:
    uax = custom(tokenizer={"type": "standard", "uax29": True})
    assert toks(uax, "中文 カタカナ 한국어 🇨🇳 -- ...") == ["中", "文", "カタカナ", "한국어", "🇨🇳"]


def test_standard_uax29_max_token_length_chunks_long_words() -> None:
    uax = custom(tokenizer={"type": "standard", "uax29": True, "max_token_length": 5})
    text = "jumped 日本"
    assert toks(uax, text) == ["jumpe", "d", "日", "本"]
    for t in analyzer(uax).detail(text):
        assert text[t["start_offset"]:t["end_offset"]] == t["token"]


# --- whitespace tokenizer --------------------------------------------------------------------
def test_whitespace_tokenizer_docs_example() -> None:
    assert toks(custom("lowercase", tokenizer="whitespace"), DOC_TEXT) == [
        "the", "milvus", "vector", "database", "is", "built", "for", "scale!"]  # fmt: skip


def test_whitespace_tokenizer_splits_on_unicode_whitespace_only() -> None:
    text = " Hello,\tworld!\n foo-bar\u00a0baz\u3000qux  "
    assert toks(custom(tokenizer="whitespace"), text) == [
        "Hello,", "world!", "foo-bar", "baz", "qux"]  # fmt: skip


# --- english analyzer ----------------------------------------------------------------------
def test_english_analyzer_docs_example() -> None:
    assert toks({"type": "english"}, DOC_TEXT) == [
        "milvus", "vector", "databas", "built", "scale"]  # fmt: skip


def test_english_analyzer_stems_and_drops_stop_words() -> None:
    out = toks({"type": "english"}, "The dog is running and jumps easily into the river")
    assert out == ["dog", "run", "jump", "easili", "river"]


def test_english_custom_stop_words_add_to_the_english_list() -> None:
    out = toks({"type": "english", "stop_words": ["dog"]}, "The dog is running")
    assert out == ["run"]  # "the"/"is" (built-in list) and "dog" (custom) are gone


def test_equivalent_custom_english_analyzer_gives_same_tokens() -> None:
    spelled = custom("lowercase", {"type": "stemmer", "language": "english"},
                     {"type": "stop", "stop_words": ["_english_"]})  # fmt: skip
    text = "Vector databases are built for scaling searches; THE index is fast."
    assert toks(spelled, text) == toks({"type": "english"}, text)


# --- chinese analyzer and jieba --------------------------------------------------------------
def test_chinese_analyzer_finds_words() -> None:
    out = toks({"type": "chinese"}, "我来到北京清华大学。")
    assert "北京" in out and "清华大学" in out
    assert out and all(regex.fullmatch(r"\p{Han}+", t) for t in out)


def test_chinese_analyzer_docs_example() -> None:
    text = "Milvus 是 LF AI & Data Foundation 下的一个开源项目，以 Apache 2.0 许可发布。"
    assert toks({"type": "chinese"}, text) == [
        "Milvus", "是", "LF", "AI", "Data", "Foundation", "下", "的", "一个", "开源", "项目",
        "以", "Apache", "2.0", "许可", "发布"]  # fmt: skip


def test_jieba_modes_and_whitespace() -> None:
    text = "我来到 北京清华大学"
    exact = toks(custom(tokenizer={"type": "jieba", "mode": "exact"}), text)
    assert exact == ["我", "来到", "北京", "清华大学"]  # the space is not a token
    search = toks(custom(tokenizer="jieba"), text)  # Milvus's default mode is "search"
    assert set(exact) < set(search) and "大学" in search


def test_jieba_keeps_punctuation_until_filtered() -> None:
    assert toks(custom(tokenizer="jieba"), "你好!世界。") == ["你好", "!", "世界", "。"]
    assert toks(custom("removepunct", tokenizer="jieba"), "你好!世界。") == ["你好", "世界"]


def test_jieba_custom_dictionary() -> None:
    text = "milvus结巴分词器中文测试"
    only_mine = {"type": "jieba", "dict": ["结巴分词器"], "mode": "exact", "hmm": False}
    assert toks(custom(tokenizer=only_mine), text) == [
        "milvus", "结巴分词器", "中", "文", "测", "试"]  # fmt: skip
    with_default = {"type": "jieba", "dict": ["_default_", "结巴分词器"], "mode": "exact"}
    assert "结巴分词器" in toks(custom(tokenizer=with_default), text)


# --- each filter alone ---------------------------------------------------------------------
def test_lowercase_filter() -> None:
    assert toks(custom("lowercase"), "The Lowercase Filter ΟΔΟΣ") == [
        "the", "lowercase", "filter", "οδοσ"]  # fmt: skip


def test_asciifolding_docs_example() -> None:
    assert toks(custom("asciifolding"), "Café Möller serves crème brûlée and piñatas.") == [
        "Cafe", "Moller", "serves", "creme", "brulee", "and", "pinatas"]  # fmt: skip


def test_asciifolding_with_lowercase_and_special_letters() -> None:
    assert toks(custom("lowercase", "asciifolding"), "Crème Brûlée") == ["creme", "brulee"]
    assert toks(custom("asciifolding"), "Straße Ærø Łódź Ｆｕｌｌ") == [
        "Strasse", "AEro", "Lodz", "Full"]  # fmt: skip
    # scripts with no ASCII equivalent are left alone (no Hangul/kana/Cyrillic mangling)
    assert toks(custom("asciifolding"), "한국어 ガイド йод") == ["한국어", "ガイド", "йод"]


def test_alphanumonly_filter() -> None:
    text = "abc 123 café x9 中文"
    assert toks(custom("alphanumonly"), text) == ["abc", "123", "x9"]


def test_cnalphanumonly_filter_drops_tokens_without_han_or_ascii_alnum() -> None:
    ws = "whitespace"
    out = toks(custom("cnalphanumonly", tokenizer=ws), "中文 abc 2.0 & ,。 é ok!")
    assert out == ["中文", "abc", "2.0", "ok!"]


def test_cncharonly_filter_keeps_tokens_with_han() -> None:
    out = toks(custom("cncharonly", tokenizer="whitespace"), "中文 abc 123 混合mix ！")
    assert out == ["中文", "混合mix"]


def test_removepunct_filter() -> None:
    out = toks(custom("removepunct", tokenizer="whitespace"), "hello , world ! 。 ok")
    assert out == ["hello", "world", "ok"]


def test_length_filter() -> None:
    text = "The length filter allows control over token length requirements for text processing."
    assert toks(custom({"type": "length", "max": 10}), text) == [
        "The", "length", "filter", "allows", "control", "over", "token", "length", "for",
        "text", "processing"]  # fmt: skip
    assert toks(custom({"type": "length", "max": 3}), "a bb ccc dddd 中文字符") == [
        "a", "bb", "ccc"]  # fmt: skip


def test_stop_filter_custom_words_and_english_list() -> None:
    text = "the quick fox of the woods"
    assert toks(custom({"type": "stop", "stop_words": ["of", "fox"]}), text) == [
        "the", "quick", "the", "woods"]  # fmt: skip
    assert toks(custom({"type": "stop", "stop_words": ["_english_", "woods"]}), text) == [
        "quick", "fox"]  # fmt: skip


def test_stop_filter_is_case_sensitive() -> None:
    assert toks(custom({"type": "stop", "stop_words": ["the"]}), "The the") == ["The"]


def test_standard_type_stop_words() -> None:
    assert toks({"type": "standard", "stop_words": ["of"]}, "Speed of Light") == [
        "speed", "light"]  # fmt: skip
    assert toks({"type": "standard", "stop_words": ["_english_"]}, DOC_TEXT) == [
        "milvus", "vector", "database", "built", "scale"]  # fmt: skip


def test_stemmer_filter() -> None:
    english = custom({"type": "stemmer", "language": "english"})
    assert toks(english, "running jumps easily databases") == [
        "run", "jump", "easili", "databas"]  # fmt: skip
    assert toks(custom({"type": "stemmer", "language": "English"}), "running") == ["run"]
    french = custom({"type": "stemmer", "language": "french"})
    assert toks(french, "continuellement") == ["continuel"]


def test_decompounder_docs_example() -> None:
    words = ["dampf", "schiff", "fahrt", "brot", "backen", "automat"]
    out = toks(custom({"type": "decompounder", "word_list": words}),
               "dampfschifffahrt brotbackautomat")  # fmt: skip
    assert out == ["dampf", "schiff", "fahrt", "brotbackautomat"]


def test_regex_filter_docs_example() -> None:
    f = {"type": "regex", "expr": "^(?!test)"}
    assert toks(custom(f), "testItem apple testCase banana") == ["apple", "banana"]


# --- filter order --------------------------------------------------------------------------
def test_filters_apply_in_the_order_listed() -> None:
    stop = {"type": "stop", "stop_words": ["the"]}
    assert toks(custom("lowercase", stop), "The End") == ["end"]
    assert toks(custom(stop, "lowercase"), "The End") == ["the", "end"]
    stem = {"type": "stemmer", "language": "english"}
    stop_running = {"type": "stop", "stop_words": ["running"]}
    assert toks(custom(stem, stop_running), "running") == ["run"]
    assert toks(custom(stop_running, stem), "running") == []
    # asciifolding before alphanumonly rescues accented words; after it, they are gone
    assert toks(custom("asciifolding", "alphanumonly"), "café") == ["cafe"]
    assert toks(custom("alphanumonly", "asciifolding"), "café") == []


# --- empty input, detail -------------------------------------------------------------------
@pytest.mark.parametrize("params", [None, {"type": "english"}, {"type": "chinese"},
                                    custom(tokenizer="whitespace")])  # fmt: skip
def test_empty_text_gives_no_tokens(params: dict | None) -> None:
    a = analyzer(params)
    assert a.tokens("") == [] and a.detail("") == [] and a.tokens(None) == []
    assert a.tokens("  \n\t ") == []


def test_non_string_text_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="text must be a string"):
        analyzer().tokens(42)  # type: ignore[arg-type]


def test_detail_offsets_and_positions() -> None:
    text = "The Quick, brown FOX jumps"
    detail = analyzer({"type": "english"}).detail(text)
    assert [d["token"] for d in detail] == ["quick", "brown", "fox", "jump"]
    # "The" (position 0) was removed by the stop filter; positions keep their stream index
    assert [d["position"] for d in detail] == [1, 2, 3, 4]
    assert all(d["position_length"] == 1 for d in detail)
    assert [text[d["start_offset"]:d["end_offset"]] for d in detail] == [
        "Quick", "brown", "FOX", "jumps"]  # fmt: skip
    assert set(detail[0]) == {"token", "start_offset", "end_offset", "position",
                              "position_length"}  # fmt: skip


def test_detail_offsets_match_unchanged_tokens() -> None:
    text = "Crème  brûlée,\tcafé 42 !"
    detail = analyzer(custom(tokenizer="whitespace")).detail(text)
    assert detail and all(text[d["start_offset"]:d["end_offset"]] == d["token"] for d in detail)
    positions = [d["position"] for d in detail]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_detail_offsets_are_characters_for_chinese() -> None:
    text = "我来到北京清华大学"
    detail = analyzer({"tokenizer": {"type": "jieba", "mode": "exact"}}).detail(text)
    assert [(d["token"], d["start_offset"], d["end_offset"]) for d in detail] == [
        ("我", 0, 1), ("来到", 1, 3), ("北京", 3, 5), ("清华大学", 5, 9)]  # fmt: skip
    assert [d["position"] for d in detail] == [0, 1, 2, 3]


def test_decompounded_parts_share_their_tokens_offsets() -> None:
    f = {"type": "decompounder", "word_list": ["bank", "note"]}
    detail = analyzer(custom(f)).detail("a banknote")
    assert [(d["token"], d["start_offset"], d["end_offset"], d["position"]) for d in detail] == [
        ("a", 0, 1, 0), ("bank", 2, 10, 1), ("note", 2, 10, 1)]  # fmt: skip


# --- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "klingon"}, "unknown analyzer type 'klingon'"),
        ({"type": 3}, "'type' must be a string"),
        ({"tokenizer": "foo"}, "unknown tokenizer 'foo'"),
        ({"tokenizer": {"type": "foo"}}, "unknown tokenizer 'foo'"),
        ({"tokenizer": {"mode": "exact"}}, "tokenizer 'type' must be a string"),
        ({"tokenizer": 7}, "'tokenizer' must be a name or an object"),
        ({"tokenizer": "lindera"}, "does not support tokenizer 'lindera'"),
        ({"filter": ["lowercase"]}, "'tokenizer'"),
        (custom("uppercase"), "unknown filter 'uppercase'"),
        (custom({"type": "bogus"}), "unknown filter 'bogus'"),
        (custom("stop"), "filter 'stop' needs parameters"),
        (custom("synonym"), "does not support filter 'synonym'"),
        ({"tokenizer": "standard", "filter": "lowercase"}, "'filter' must be a list"),
        (custom({"type": "length", "max": 0}), "'max' must be a positive integer, got 0"),
        (custom({"type": "length", "max": -3}), "'max' must be a positive integer, got -3"),
        (custom({"type": "length", "max": "10"}), "'max' must be a positive integer, got '10'"),
        (custom({"type": "length", "max": True}), "'max' must be a positive integer, got True"),
        (custom({"type": "length"}), "'max' must be a positive integer, got None"),
        (custom({"type": "length", "max": 5, "min": 1}), "unknown parameter 'min'"),
        (custom({"type": "stop", "stop_words": "_english_"}), "'stop_words' must be a list"),
        (custom({"type": "stop", "stop_words": ["a", 1]}), "'stop_words' must be a list"),
        (custom({"type": "stop", "stop_words": ["_french_"]}), "'_french_'"),
        (custom({"type": "stop", "stop_words_file": {}}), "'stop_words_file'"),
        (custom({"type": "stemmer", "language": "klingon"}), "unknown 'language' 'klingon'"),
        (custom({"type": "stemmer"}), "unknown 'language' None"),
        (custom({"type": "decompounder", "word_list": []}), "'word_list' is empty"),
        (custom({"type": "decompounder", "word_list": "ab"}), "'word_list' must be a list"),
        (custom({"type": "regex", "expr": "("}), "invalid 'expr' '('"),
        (custom({"type": "regex"}), "'expr' must be a string"),
        ({"type": "standard", "tokenizer": "standard"}, "'type' ('standard') and 'tokenizer'"),
        ({"type": "english", "filter": ["lowercase"]}, "'type' ('english') and 'filter'"),
        ({"type": "english", "stop_words": "the"}, "'stop_words' must be a list"),
        ({"type": "english", "lang": "en"}, "unknown parameter 'lang'"),
        ({"tokenizer": "standard", "filters": []}, "unknown key 'filters'"),
        ({"tokenizer": "standard", "char_filter": []}, "'char_filter'"),
        ({"tokenizer": {"type": "jieba", "mode": "fast"}}, "'mode' must be 'search' or 'exact'"),
        ({"tokenizer": {"type": "jieba", "dict": "x"}}, "'dict' must be a list of strings"),
        ({"tokenizer": {"type": "jieba", "hmm": "yes"}}, "'hmm' must be true or false"),
        ({"tokenizer": {"type": "whitespace", "x": 1}}, "unknown parameter 'x'"),
        ({"tokenizer": {"type": "standard", "max_token_length": 5}}, "needs 'uax29': true"),
        ({"tokenizer": {"type": "standard", "uax29": True, "max_token_length": 0}},
         "'max_token_length' must be an integer"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be an object"),
        (42, "must be an object"),
    ],
)
def test_invalid_params_name_the_offender(params: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=regex.escape(message)) as err:
        check_analyzer_params(params)  # type: ignore[arg-type]
    assert str(err.value).startswith("analyzer_params: ")
    assert err.value.code == 1100
    with pytest.raises(InvalidArgumentError):
        analyzer(params)  # type: ignore[arg-type]


def test_check_analyzer_params_returns_canonical_dict() -> None:
    assert check_analyzer_params(None) == {"type": "standard"}
    assert check_analyzer_params({}) == {"type": "standard"}
    assert check_analyzer_params("") == {"type": "standard"}
    params = {"tokenizer": {"type": "jieba", "mode": "exact"}, "filter": ["cnalphanumonly"]}
    assert check_analyzer_params(json.dumps(params)) == params
    out = check_analyzer_params(params)
    assert out == params and out is not params
    out["filter"].append("lowercase")  # the result is the caller's: the input is untouched
    assert params["filter"] == ["cnalphanumonly"]


# --- caching -------------------------------------------------------------------------------
def test_analyzer_is_cached_by_canonical_params() -> None:
    params = {"type": "english", "stop_words": ["dog"]}
    a = analyzer(params)
    assert isinstance(a, Analyzer) and a.params == params
    assert analyzer(json.dumps(params)) is a
    assert analyzer('{"stop_words": ["dog"], "type": "english"}') is a  # key order
    assert analyzer(dict(reversed(list(params.items())))) is a
    assert analyzer() is analyzer({}) is analyzer('{"type": "standard"}')
    assert analyzer({"type": "english", "stop_words": ["cat"]}) is not a


def test_analyzer_is_safe_to_share_between_threads() -> None:
    a = analyzer({"type": "english"})
    texts = [f"Running {i} foxes jumped easily over {i * 7} lazy dogs, quickly!" for i in
             range(300)]  # fmt: skip
    serial = [a.tokens(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(a.tokens, texts)) == serial
