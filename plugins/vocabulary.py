"""The controlled element vocabulary (docs/elements.md): name -> (usual unit, description).

Format adapters map each format's own codes onto these names; a field with no mapping keeps
its source name, so nothing is dropped for want of a mapping.
"""

ELEMENTS: dict[str, tuple[str, str]] = {
    "air_temperature": ("degC", "air temperature at screen height"),
    "air_temperature_max": ("degC", "maximum air temperature over the period"),
    "air_temperature_min": ("degC", "minimum air temperature over the period"),
    "dew_point_temperature": ("degC", "dew point temperature"),
    "relative_humidity": ("%", "relative humidity"),
    "air_pressure": ("hPa", "station-level air pressure"),
    "sea_level_pressure": ("hPa", "air pressure reduced to mean sea level"),
    "wind_speed": ("m/s", "mean wind speed"),
    "wind_speed_max": ("m/s", "maximum wind speed (gust)"),
    "wind_direction": ("deg", "mean wind direction, degrees from north"),
    "precipitation_amount": ("mm", "precipitation accumulated over the period"),
    "solar_radiation": ("W/m2", "global solar irradiance"),
    "solar_radiation_total": ("MJ/m2", "global solar irradiation over the period"),
    "sunshine_duration": ("min", "sunshine duration over the period"),
    "visibility": ("m", "horizontal visibility"),
    "soil_temperature": ("degC", "soil temperature"),
    "soil_moisture": ("m3/m3", "volumetric soil water content"),
    "water_level": ("m", "water level above gauge datum"),
    "water_temperature": ("degC", "water temperature"),
    "snow_depth": ("cm", "snow depth"),
    "battery_voltage": ("V", "logger supply voltage"),
    "logger_temperature": ("degC", "logger panel temperature"),
}
