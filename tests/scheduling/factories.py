import math
from datetime import timedelta

import factory

from contractors.geo import EARTH_RADIUS_MILES
from scheduling.models import Assignment, Job
from tests.contractors.factories import ContractorFactory

JOB_LAT, JOB_LNG = 40.72, -73.99  # JobFactory's site


def north_of_job(miles: float) -> float:
    """The latitude `miles` due north of JobFactory's site: along a meridian the haversine
    distance is R x delta-latitude in radians."""
    return JOB_LAT + math.degrees(miles / EARTH_RADIUS_MILES)


class JobFactory(factory.django.DjangoModelFactory):
    """An open two-hour tile job near the factory contractor (about 0.7 miles away)."""

    class Meta:
        model = Job

    type = "tile"
    required_skills = factory.LazyFunction(lambda: ["tile"])
    lat = JOB_LAT
    lng = JOB_LNG
    address = "2 Broadway, New York"
    region = "default"
    desired_date = factory.Faker("future_date", end_date="+30d")
    duration_minutes = 120
    priority = "normal"
    status = "open"


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    job = factory.SubFactory(JobFactory, status="assigned")
    contractor = factory.SubFactory(ContractorFactory)
    end = factory.LazyAttribute(lambda a: a.start + timedelta(minutes=a.job.duration_minutes))
    status = "scheduled"
    score = 0.9
