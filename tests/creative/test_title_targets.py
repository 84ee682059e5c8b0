"""English title targets without model numbers, on real Amazon 2018 Industrial & Scientific titles."""

from genads.creative.title_targets import strip_model_numbers


def test_model_numbers_leave_the_title_sizes_brands_and_3d_stay():
    """Real Amazon 2018 Industrial_and_Scientific titles: part numbers go, sizes, rates, the brand's own digits
    and short tokens such as "3D" / "i3" stay, and no stray separator is left behind."""
    cases = {
        "Justrite 7150400 Type I Galvanized Steel Oils Safety Can, 5 Gallon Capacity, Green":
            "Justrite Type I Galvanized Steel Oils Safety Can, 5 Gallon Capacity, Green",
        "WD-40 300281 Specialist Industrial-Strength Degreaser 15 OZ (Pack of 1)":
            "WD-40 Specialist Industrial-Strength Degreaser 15 OZ (Pack of 1)",
        "Dico 541-786-21/2 Nyalox Cup Brush 21/2-Inch Blue 240 Grit": "Dico Nyalox Cup Brush 21/2-Inch Blue 240 Grit",
        "VenTech VT IF6+CF6 IF6CF620 Inline Duct Fan with Virgin Charcoal Carbon Filter Combo, 440 CFM, 6":
            "VenTech VT Inline Duct Fan with Virgin Charcoal Carbon Filter Combo, 440 CFM, 6",
        "Anycubic All Metal Right Hand MK8 Extruder Aluminum Frame Block DIY Kit for Reprap i3 3D Printer":
            "Anycubic All Metal Right Hand Extruder Aluminum Frame Block DIY Kit for Reprap i3 3D Printer",
        "Karter Scientific 211Z3 Standard Microscope Cover Slip, 1 Thick, 22x22mm (Pack of 200)":
            "Karter Scientific Standard Microscope Cover Slip, 1 Thick, (Pack of 200)",
        "Rescue Tape RT1000201202USCO": "Rescue Tape",
        "Inland 1.75mm Peak Green PLA 3D Printer Filament - 1kg Spool (2.2 lbs)":
            "Inland 1.75mm Peak Green PLA 3D Printer Filament - 1kg Spool (2.2 lbs)",
        "HM Digital DM-1 In-Line Dual TDS Monitor, 0-9990 ppm Range": "HM Digital In-Line Dual TDS Monitor, 0-9990 ppm Range",
    }
    for title, expected in cases.items():
        brand = "WD-40" if title.startswith("WD-40") else ""
        assert strip_model_numbers(title, brand) == expected, title
