"""Bundle titles (genads.serve.creatives): the n-gram default, or any generator that writes text itself."""

import pandas as pd

from genads.serve.creatives import creative_titles

CAT = pd.DataFrame({"title": ["Stanley Heavy Duty Staples 1/2 inch", "Kreg Pocket Hole Screws, 500 pack"],
                    "description": ["Heavy-duty staples for insulation and roofing felt", "Washer-head screws for plywood"]})


class _Echo:
    def __init__(self):
        self.calls = []

    def title(self, selling_points, description=""):
        self.calls.append(list(selling_points))
        return "" if len(self.calls) == 2 else "Heavy-duty staples for roofing felt"


def test_default_titles_use_only_selling_point_words():
    out = creative_titles(CAT)
    assert len(out) == 2 and all(out)


def test_a_text_generator_is_used_and_empty_output_keeps_the_catalogue_title():
    gen = _Echo()
    out = creative_titles(CAT, generator=gen)
    assert out == ["Heavy-duty staples for roofing felt", CAT["title"][1]]
    assert len(gen.calls) == 2 and all(gen.calls)
