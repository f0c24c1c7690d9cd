"""HJ 212 factor codes onto the element vocabulary, with the unit each code is reported in.

Codes of HJ 212-2017/2025 and the 2005-era codes some older units still send. A code not
listed here is kept under its own code (``w99999``), never dropped.
"""

FACTORS: dict[str, tuple[str, str]] = {
    # ambient air quality
    "a34004": ("pm2_5", "ug/m3"), "a34002": ("pm10", "ug/m3"), "a34001": ("tsp", "ug/m3"),
    "a21026": ("so2", "mg/m3"), "a21004": ("no2", "mg/m3"), "a21003": ("no", "mg/m3"),
    "a21002": ("nox", "mg/m3"), "a21005": ("co", "mg/m3"), "a05024": ("o3", "mg/m3"),
    "a24088": ("vocs", "mg/m3"), "a24087": ("hydrocarbons", "mg/m3"),
    "a34013": ("dust", "mg/m3"), "a19001": ("oxygen", "%"),
    # meteorology at the station
    "a01001": ("air_temperature", "degC"), "a01002": ("relative_humidity", "%"),
    "a01006": ("air_pressure", "kPa"), "a01007": ("wind_speed", "m/s"),
    "a01008": ("wind_direction", "deg"),
    # flue gas
    "a01011": ("flue_gas_velocity", "m/s"), "a01012": ("flue_gas_temperature", "degC"),
    "a01013": ("flue_gas_pressure", "kPa"), "a01014": ("flue_gas_humidity", "%"),
    "a00000": ("flue_gas_flow", "m3/s"),
    # water quality
    "w01018": ("cod", "mg/L"), "w21003": ("nh3_n", "mg/L"), "w01001": ("ph", "1"),
    "w01009": ("dissolved_oxygen", "mg/L"), "w01010": ("water_temperature", "degC"),
    "w01014": ("conductivity", "uS/cm"), "w01003": ("turbidity", "NTU"),
    "w01019": ("permanganate_index", "mg/L"), "w21001": ("total_nitrogen", "mg/L"),
    "w21011": ("total_phosphorus", "mg/L"), "w01012": ("suspended_solids", "mg/L"),
    "w00000": ("wastewater_flow", "L/s"),
    # noise
    "LA": ("noise_level", "dB(A)"),
    # HJ/T 212-2005 codes
    "001": ("ph", "1"), "011": ("cod", "mg/L"), "060": ("nh3_n", "mg/L"),
    "065": ("total_nitrogen", "mg/L"), "101": ("total_phosphorus", "mg/L"),
    "003": ("suspended_solids", "mg/L"), "B01": ("wastewater_flow", "L/s"),
    "B02": ("flue_gas_flow", "m3/s"), "01": ("dust", "mg/m3"), "02": ("so2", "mg/m3"),
    "03": ("nox", "mg/m3"), "04": ("co", "mg/m3"), "S01": ("oxygen", "%"),
    "S02": ("flue_gas_velocity", "m/s"), "S03": ("flue_gas_temperature", "degC"),
}

# value kinds: suffix of the element name, and whether the unit stays the code's unit
KINDS = {"Rtd": "", "Avg": "", "Min": "_min", "Max": "_max", "Cou": "_total"}
