"""Questions about another city or province are not answered with Beijing's rules (knowledge_base/scope.py)."""
from __future__ import annotations

import pytest

from knowledge_base.scope import other_region


@pytest.mark.parametrize("question, region", [
    ("上海的失业金一个月能领多少钱", "上海"),
    ("广州买房提取住房公积金需要什么材料", "广州"),
    ("天津落户有什么新政策", "天津"),
    ("请问深圳市的公积金怎么提取", "深圳"),
    ("河北老家的新农合明年交多少钱", "河北"),
    ("南京的落户政策", "南京"),  # 南京 contains 京 but is not Beijing
])
def test_a_question_about_another_region_names_it(question, region):
    assert other_region(question) == region


@pytest.mark.parametrize("question", [
    "居住证怎么办理",
    "在上海交了5年社保，现在来北京工作了，上海那几年能接上吗",  # names Beijing
    "退了休准备去哈尔滨常住，以后在当地住院怎么才能当场结算不用垫钱",  # a Beijing insured moving away
    "儿子户籍在安徽，目前在朝阳读三年级，有资格参加本地的城乡医疗保险不",  # 朝阳 here is the Beijing district
    "我老家河北的，退休金怎么领",  # a hometown, not the topic
    "天津的公交卡能在这用吗",  # "here" is Beijing
    "广安门医院怎么挂号",  # a Beijing landmark, not the city 广安
    "来宾登记怎么办",  # 来宾 is a city and an ordinary word
    "",
])
def test_beijing_questions_are_left_to_the_knowledge_base(question):
    assert other_region(question) is None
